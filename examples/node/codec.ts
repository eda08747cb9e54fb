// A payload codec compatible with the worker's (codec/codec.go): AES-256-GCM
// over the whole serialized Payload protobuf, a 12-byte random nonce before
// the ciphertext and its 16-byte tag after, the key id as additional
// authenticated data, and the metadata encoding "binary/encrypted" with the
// key id under "encryption-key-id". Keys come as the worker's
// PAYLOAD_ENCRYPTION_KEYS ("id:base64-32-bytes,...") and
// PAYLOAD_ENCRYPTION_KEY_ID (the active id; defaults to the first).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload as PayloadMessage, PayloadCodec } from '@temporalio/common';
import protos from '@temporalio/proto';

const { Payload } = protos.temporal.api.common.v1;
const ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';

export class AesGcmCodec implements PayloadCodec {
  private readonly keys = new Map<string, Buffer>();
  private readonly active: string;

  constructor(spec: string, activeId?: string) {
    for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
      const [id, b64] = item.split(':');
      const key = Buffer.from(b64 ?? '', 'base64');
      if (!id || key.length !== 32) throw new Error('PAYLOAD_ENCRYPTION_KEYS: want id:base64 of 32 bytes');
      this.keys.set(id, key);
    }
    this.active = activeId || this.keys.keys().next().value || '';
    if (!this.keys.has(this.active)) throw new Error('PAYLOAD_ENCRYPTION_KEY_ID is not among the keys');
  }

  async encode(payloads: PayloadMessage[]): Promise<PayloadMessage[]> {
    return payloads.map((p) => {
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.active)!, nonce);
      cipher.setAAD(Buffer.from(this.active));
      const sealed = Buffer.concat([cipher.update(Payload.encode(p).finish()), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: { encoding: Buffer.from(ENCODING), [KEY_ID]: Buffer.from(this.active) },
        data: Buffer.concat([nonce, sealed]),
      };
    });
  }

  async decode(payloads: PayloadMessage[]): Promise<PayloadMessage[]> {
    return payloads.map((p) => {
      if (Buffer.from(p.metadata?.encoding ?? []).toString() !== ENCODING) return p;
      const id = Buffer.from(p.metadata?.[KEY_ID] ?? []).toString();
      const key = this.keys.get(id);
      if (!key) throw new Error(`payload encrypted with key ${id.slice(0, 40)}, which is not configured`);
      const data = Buffer.from(p.data ?? []);
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
      decipher.setAAD(Buffer.from(id));
      decipher.setAuthTag(data.subarray(data.length - 16));
      return Payload.decode(Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]));
    });
  }
}
