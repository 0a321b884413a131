// The server key, <data>/server.key: 32 random bytes that encrypt tenants' secrets at rest (AES-256-GCM). Whoever
// reads it and server.db reads every tenant's provider keys, so it is made readable by its owner only, and a key
// file that others may read is refused rather than used: the operator must notice and decide.
//
// Losing the key loses the secrets (they must be set again); it is never replaced silently.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { PerstackError } from "../errors.js";

export const SERVER_KEY_FILE = "server.key";
export const SERVER_KEY_BYTES = 32;
/** 96-bit nonces, the size GCM is specified for; random per encryption (far below the 2^32 limit per key). */
const IV_BYTES = 12;

/** The server key file exists but must not be used as it is. Exit code 1: the operator fixes the file. */
export class ServerKeyError extends PerstackError {}

/** A secret that does not decrypt: another key, or a row altered or moved to another tenant or name. */
export class SecretDecryptError extends PerstackError {}

function unreadable(path: string, caught: unknown): Error {
  const code = (caught as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return caught as Error;
  return new ServerKeyError(`cannot read ${path} (${code ?? (caught as Error).message}); run as the user who owns it`);
}

/** The key in `path`, or ServerKeyError when the file is not one to trust; a missing file throws ENOENT. */
function readKey(path: string): Buffer {
  let stat;
  try {
    stat = statSync(path);
  } catch (caught) {
    throw unreadable(path, caught);
  }
  if (!stat.isFile()) throw new ServerKeyError(`${path} is not a regular file; move it away so perstack can create the server key there`);
  if ((stat.mode & 0o077) !== 0) {
    const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
    throw new ServerKeyError(`${path} is open to other users (mode ${mode}); a server key must be readable by its owner only: run chmod 600 ${path}`);
  }
  if (stat.size !== SERVER_KEY_BYTES) {
    throw new ServerKeyError(
      `${path} holds ${stat.size} bytes, not ${SERVER_KEY_BYTES}: not a perstack server key; restore the right file, or move it away to create a new key (then set every tenant secret again)`,
    );
  }
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (caught) {
    throw unreadable(path, caught);
  }
  // The file could change between the stat and the read.
  if (key.length !== SERVER_KEY_BYTES) throw new ServerKeyError(`${path} changed while it was read; try again`);
  return key;
}

/**
 * The server key of `dataDir`, created on first use. Two processes starting together must end up with the same
 * key: the new key is written whole to a private temporary file, then hard-linked to server.key, which fails if
 * that name exists (link(2) never replaces, as O_EXCL never opens an existing file). So server.key is never seen
 * half-written, and whoever loses the race reads the winner's key.
 */
export function loadServerKey(dataDir: string): Buffer {
  const path = join(dataDir, SERVER_KEY_FILE);
  try {
    return readKey(path);
  } catch (caught) {
    if ((caught as NodeJS.ErrnoException).code !== "ENOENT") throw caught;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const temporary = join(dataDir, `.${SERVER_KEY_FILE}.${process.pid}.${randomBytes(6).toString("hex")}`);
  const fd = openSync(temporary, "wx", 0o600);
  try {
    writeSync(fd, randomBytes(SERVER_KEY_BYTES));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temporary, path);
  } catch (caught) {
    if ((caught as NodeJS.ErrnoException).code !== "EEXIST") throw caught;
  } finally {
    unlinkSync(temporary);
  }
  // The directory entry must reach the disk too, or a power loss could lose the key the secrets were sealed with.
  const dirFd = openSync(dataDir, "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
  return readKey(path);
}

export interface SealedSecret {
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** Whose secret a value is. Bound into the ciphertext as additional authenticated data. */
export interface SecretOwner {
  tenant: string;
  name: string;
}

// Tenant and variable names cannot hold NUL (both are validated), so the separator makes the pair unambiguous;
// the prefix and version keep this AAD from meaning anything in another use of the key.
function additionalData(owner: SecretOwner): Buffer {
  return Buffer.from(`perstack-tenant-secret-v1\0${owner.tenant}\0${owner.name}`, "utf8");
}

export function encryptSecret(key: Buffer, plaintext: string, owner: SecretOwner): SealedSecret {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(additionalData(owner));
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return { iv, ciphertext, tag: cipher.getAuthTag() };
}

/** The plaintext, or SecretDecryptError when the key, the row or its owner does not match what was sealed. */
export function decryptSecret(key: Buffer, sealed: SealedSecret, owner: SecretOwner): string {
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, sealed.iv, { authTagLength: 16 });
    decipher.setAAD(additionalData(owner));
    decipher.setAuthTag(sealed.tag);
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).toString("utf8");
  } catch {
    throw new SecretDecryptError(
      `secret ${owner.name} of tenant "${owner.tenant}" does not decrypt with this server key (the key file was replaced, or the row was altered); set it again with perstack tenants secret set`,
    );
  }
}
