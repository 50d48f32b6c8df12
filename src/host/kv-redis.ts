import type { Logger } from 'pino';
import type { HostConfig } from '../config/schema.js';
import { MemoryKv, type KvStore } from './kv.js';

export class RedisKv {
  static async connect(config: HostConfig['kv'], _log: Logger): Promise<KvStore> {
    return new MemoryKv(config.max_keys);
  }
}
