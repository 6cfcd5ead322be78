// Hashing pass-throughs: sha256 is computed while bytes flow, so no artifact is ever held whole in
// memory just to be hashed.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { ArtifactRef } from '../../workflows/types';
import { IntegrityError } from './errors';

/** Hex sha256 of a buffer. */
export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Pass-through that hashes and counts what flows through it; `sha256` is readable once it ended. */
export class DigestStream extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private hex: string | undefined;

  get sha256(): string {
    if (this.hex === undefined) throw new Error('DigestStream.sha256 read before the stream ended');
    return this.hex;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.hex = this.hash.digest('hex');
    callback();
  }
}

/**
 * Pass-through that checks the bytes against `ref` and fails with `IntegrityError`: at the end on a
 * digest or size mismatch, or as soon as more bytes arrive than the ref declares. Consumers therefore
 * see data before it is verified; they must not commit anything until the stream ended cleanly.
 */
export class VerifyStream extends Transform {
  private bytes = 0;
  private readonly hash: Hash = createHash('sha256');

  constructor(private readonly ref: ArtifactRef) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.ref.bytes) {
      callback(this.mismatch(undefined));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.hash.digest('hex');
    const ok = actual === this.ref.sha256.toLowerCase() && this.bytes === this.ref.bytes;
    callback(ok ? null : this.mismatch(actual));
  }

  private mismatch(actualSha256: string | undefined): IntegrityError {
    return new IntegrityError(this.ref.uri, this.ref.sha256, actualSha256, this.ref.bytes, this.bytes);
  }
}
