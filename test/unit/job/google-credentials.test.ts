// google-vertex: the host reads the Application Default Credentials file for the gateway. Each failure names the
// file (or says how to make one) without echoing its content.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gcloudAdcPath, readGoogleCredentials } from "../../../src/job/google-credentials.js";
import { MissingEnvError } from "../../../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "perstack-adc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string) => {
  writeFileSync(join(dir, name), content, { mode: 0o600 });
  return join(dir, name);
};

describe("readGoogleCredentials", () => {
  it("reads GOOGLE_APPLICATION_CREDENTIALS, relative to the directory the run starts in", () => {
    const key = { type: "service_account", client_email: "a@b.iam.gserviceaccount.com", private_key: "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n" };
    file("sa.json", JSON.stringify(key, null, 2));
    expect(JSON.parse(readGoogleCredentials("sa.json", dir, {}))).toEqual(key);
  });

  it("falls back to gcloud's application-default login file under CLOUDSDK_CONFIG", () => {
    const user = { type: "authorized_user", client_id: "c", client_secret: "s", refresh_token: "r" };
    file("application_default_credentials.json", JSON.stringify(user));
    expect(gcloudAdcPath({ CLOUDSDK_CONFIG: dir })).toBe(join(dir, "application_default_credentials.json"));
    expect(JSON.parse(readGoogleCredentials(undefined, dir, { CLOUDSDK_CONFIG: dir }))).toEqual(user);
  });

  it("says how to get credentials when there are none", () => {
    expect(() => readGoogleCredentials(undefined, dir, { CLOUDSDK_CONFIG: join(dir, "nowhere") })).toThrow(
      "provider google-vertex needs Google credentials for the provider gateway: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run `gcloud auth application-default login`",
    );
  });

  it("names the file that is missing, not JSON, or not credentials, and never shows its content", () => {
    const cases: Array<[string, RegExp]> = [
      [join(dir, "missing.json"), /names .*missing\.json, which cannot be read \(ENOENT\)/],
      [file("bad.json", "secret-looking {"), /names .*bad\.json, which is not JSON/],
      [file("other.json", JSON.stringify({ type: "external_account", secret: "s3cr3t" })), /holds "external_account" credentials; the provider gateway takes a service-account key or a gcloud user login/],
      [file("array.json", "[1]"), /holds no credentials type/],
    ];
    for (const [path, message] of cases) {
      let error: unknown;
      try {
        readGoogleCredentials(path, dir, {});
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MissingEnvError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toMatch(/s3cr3t|secret-looking/);
    }
  });
});
