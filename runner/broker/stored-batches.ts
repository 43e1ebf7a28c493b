/**
 * The consuming side of a stored queue, shared by both brokers: deliveries are gathered into batches
 * (what arrived before the connection went quiet, at most `batchSize` or about 4 MiB), handed to the handler one
 * batch at a time, and a batch whose handler throws is held and handed over again after a backoff
 * (100 ms doubling to 5 s by default) until it is stored or the consumer stops. Nothing is requeued
 * or dropped on a failure: the queue's order is kept, and a database outage of any length only
 * delays storage. The broker's side (ack, dead-letter, give back) comes in as `Settle`.
 */
import type { BrokerLogger, StoredDelivery, StoredOptions } from '../contract/broker.ts';
import type { MessageKind } from '../contract/catalog.ts';

export interface Settle<Item> {
  ack(item: Item): void;
  deadLetter(item: Item, reason: string): void;
}

export const DEFAULT_BATCH_SIZE = 500;
/** A batch also ends once its payloads reach this many bytes: big log chunks make small batches. */
export const DEFAULT_BATCH_BYTES = 4 * 1024 * 1024;

export class StoredBatches<Item, T> {
  private buffer: Item[] = [];
  private bufferBytes = 0;
  private readonly unsettledItems = new Set<Item>();
  private busy = false;
  private flushQueued = false;
  private stopped = false;
  private wakeRetry: (() => void) | null = null;
  readonly batchSize: number;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;

  constructor(
    private readonly kind: MessageKind,
    private readonly decode: (item: Item) => T | undefined,
    private readonly handler: (batch: StoredDelivery<T>[]) => Promise<void>,
    private readonly settle: Settle<Item>,
    private readonly logger: BrokerLogger,
    opts: StoredOptions = {},
    /** Told when the last unsettled delivery of a stopped consumer is settled. */
    private readonly onIdle: () => void = () => {},
    /** The payload size of a delivery, for the byte bound of a batch. */
    private readonly sizeOf: (item: Item) => number = () => 0,
  ) {
    this.batchSize = Math.max(1, opts.batchSize ?? DEFAULT_BATCH_SIZE);
    this.retryDelayMs = Math.max(1, opts.retryDelayMs ?? 100);
    this.maxRetryDelayMs = Math.max(this.retryDelayMs, opts.maxRetryDelayMs ?? 5_000);
  }

  /** A delivery arrived. */
  push(item: Item): void {
    this.buffer.push(item);
    this.bufferBytes += this.sizeOf(item);
    if (this.buffer.length >= this.batchSize || this.bufferBytes >= DEFAULT_BATCH_BYTES) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      // A batch is what arrived before the connection went quiet: flush after this round of I/O.
      setImmediate(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  /** Deliveries handed to the handler and not settled yet. */
  unsettled(): number {
    return this.unsettledItems.size;
  }

  /**
   * Stops handing out deliveries and retrying: returns what the broker should give back (received
   * but never handed over, and held by a batch waiting for its retry).
   */
  stop(): Item[] {
    this.stopped = true;
    const back = this.buffer.splice(0);
    this.bufferBytes = 0;
    if (this.wakeRetry) {
      back.push(...this.unsettledItems);
      this.unsettledItems.clear();
      this.wakeRetry();
    }
    return back;
  }

  /** The connection is gone: the broker has every unsettled delivery back; forget them. */
  forget(): void {
    this.buffer = [];
    this.bufferBytes = 0;
    this.unsettledItems.clear();
    this.wakeRetry?.();
  }

  private flush(): void {
    if (this.busy || this.stopped || this.buffer.length === 0) return;
    this.busy = true;
    let count = 0;
    let bytes = 0;
    while (
      count < this.buffer.length &&
      count < this.batchSize &&
      (count === 0 || bytes < DEFAULT_BATCH_BYTES)
    ) {
      bytes += this.sizeOf(this.buffer[count]!);
      count += 1;
    }
    const batch = this.buffer.splice(0, count);
    this.bufferBytes = Math.max(0, this.bufferBytes - bytes);
    void this.handle(batch).finally(() => {
      this.busy = false;
      if (this.stopped && this.unsettledItems.size === 0) this.onIdle();
      this.flush();
    });
  }

  private async handle(batch: Item[]): Promise<void> {
    const held: { item: Item; delivery: StoredDelivery<T> }[] = [];
    for (const item of batch) {
      const message = this.decode(item);
      // Invalid (reported by decode): handing it over again would not make it valid.
      if (message === undefined) {
        this.settle.deadLetter(item, 'invalid');
        continue;
      }
      this.unsettledItems.add(item);
      const done = (how: () => void) => async (): Promise<void> => {
        if (!this.unsettledItems.delete(item)) return;
        how();
        if (this.stopped && this.unsettledItems.size === 0 && !this.busy) this.onIdle();
      };
      held.push({
        item,
        delivery: {
          message,
          ack: done(() => this.settle.ack(item)),
          deadLetter: (reason) => done(() => this.settle.deadLetter(item, reason))(),
        },
      });
    }
    let delay = this.retryDelayMs;
    let failures = 0;
    for (;;) {
      const open = held.filter(({ item }) => this.unsettledItems.has(item)).map(({ delivery }) => delivery);
      if (open.length === 0 || this.stopped) return;
      try {
        await this.handler(open);
        if (failures > 0) {
          this.logger.warn(
            { kind: this.kind, failures },
            `${this.kind} batch stored after ${failures} failures`,
          );
        }
        return;
      } catch (err) {
        failures += 1;
        // The first failure and then every tenth: an outage is a line now and then, not a flood.
        if (failures === 1 || failures % 10 === 0) {
          this.logger.error(
            { err, kind: this.kind, held: open.length, failures, retryInMs: delay },
            `storing a ${this.kind} batch failed; holding it and retrying`,
          );
        }
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            clearTimeout(timer);
            if (this.wakeRetry === wake) this.wakeRetry = null;
            resolve();
          };
          const timer = setTimeout(wake, delay);
          this.wakeRetry = wake;
        });
        delay = Math.min(delay * 2, this.maxRetryDelayMs);
      }
    }
  }
}
