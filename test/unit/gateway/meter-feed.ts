// Feeds a response body to a usage meter the ways a socket may deliver it: whole, one byte at a time, and split
// once at every byte boundary (which also cuts every multi-byte UTF-8 character and every line).
import { expect } from "vitest";
import { meterFor } from "../../../src/gateway/usage/meter.ts";
import type { GatewayProtocol } from "../../../src/gateway/types.ts";

export interface MeterInput {
  protocol: GatewayProtocol;
  contentType: string | undefined;
  path: string;
}

export function meterChunks(input: MeterInput, chunks: Buffer[]): ReturnType<ReturnType<typeof meterFor>["end"]> {
  const meter = meterFor(input.protocol, { contentType: input.contentType, path: input.path });
  for (const chunk of chunks) meter.write(chunk);
  return meter.end();
}

export function meterWhole(input: MeterInput, body: Buffer | string): ReturnType<typeof meterChunks> {
  return meterChunks(input, [Buffer.from(body)]);
}

/** Meters the body whole, byte by byte, and split at every boundary; all must agree. Returns the result. */
export function meterEveryWay(input: MeterInput, body: Buffer | string): ReturnType<typeof meterChunks> {
  const bytes = Buffer.from(body);
  const whole = meterChunks(input, [bytes]);
  const byteByByte = meterChunks(input, [...bytes].map((b) => Buffer.from([b])));
  expect(byteByByte).toEqual(whole);
  for (let i = 1; i < bytes.length; i++) {
    const split = meterChunks(input, [bytes.subarray(0, i), bytes.subarray(i)]);
    if (JSON.stringify(split) !== JSON.stringify(whole)) {
      expect({ splitAt: i, result: split }).toEqual({ splitAt: i, result: whole });
    }
  }
  return whole;
}
