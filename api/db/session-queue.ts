/**
 * The order in which the embedded database takes the messages of its clients. PGlite is one
 * PostgreSQL session; pglite-socket multiplexes many connections onto it, one protocol message at a
 * time, keeping one connection's turn only inside an explicit transaction. But an extended-protocol
 * query is several messages (Parse, Bind, Describe, Execute … Sync) that share the session's unnamed
 * statement and portal: another connection's message in between (a simple query drops the unnamed
 * statement) broke it with `unnamed prepared statement does not exist` (26000) or `portal "" does
 * not exist`, and the ingester's batch was lost. So a connection that has begun an extended query
 * keeps the session until its Sync, and one inside a transaction until the transaction ends; the
 * others wait their turn.
 *
 * It stands in for pglite-socket's own queue (same methods, set on the server before it accepts a
 * connection), which its handlers call.
 */
import type { PGlite } from '@electric-sql/pglite';

interface Entry {
  handlerId: number;
  message: Uint8Array;
  onData: (data: Uint8Array) => void;
  resolve: (bytes: number) => void;
  reject: (err: unknown) => void;
}

/** Message types that end a unit of work: Sync, a simple Query, Terminate. */
const ENDS = new Set(['S', 'Q', 'X'].map((c) => c.charCodeAt(0)));
/** Message types of the extended protocol, which run until a Sync. */
const EXTENDED = new Set(['P', 'B', 'D', 'E', 'C', 'H', 'F'].map((c) => c.charCodeAt(0)));

export class SessionQueue {
  private queue: Entry[] = [];
  private processing = false;
  /** The connection whose turn it is until it finishes its query or transaction; null: anyone's. */
  private holder: number | null = null;

  constructor(private readonly db: PGlite) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ handlerId, message, onData, resolve, reject });
      void this.process();
    });
  }

  getQueueLength(): number {
    return this.queue.length;
  }

  clearQueueForHandler(handlerId: number): void {
    this.queue = this.queue.filter((entry) => {
      if (entry.handlerId !== handlerId) return true;
      entry.reject(new Error('Handler disconnected'));
      return false;
    });
  }

  /** A connection went away: its open transaction is rolled back and the others go on. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.holder !== handlerId) return;
    this.holder = null;
    if (this.db.isInTransaction()) await this.db.exec('ROLLBACK');
    void this.process();
  }

  private next(): Entry | undefined {
    if (this.holder === null) return this.queue.shift();
    const at = this.queue.findIndex((entry) => entry.handlerId === this.holder);
    return at === -1 ? undefined : this.queue.splice(at, 1)[0];
  }

  private async process(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      for (let entry = this.next(); entry; entry = this.next()) {
        let bytes = 0;
        try {
          await this.db.runExclusive(() =>
            this.db.execProtocolRawStream(entry!.message, {
              onRawData: (data) => {
                bytes += data.length;
                entry!.onData(data);
              },
            }),
          );
        } catch (err) {
          this.holder = null;
          entry.reject(err);
          continue;
        }
        const type = entry.message[0] ?? 0;
        if (EXTENDED.has(type)) this.holder = entry.handlerId;
        else if (ENDS.has(type)) this.holder = this.db.isInTransaction() ? entry.handlerId : null;
        entry.resolve(bytes);
      }
    } finally {
      this.processing = false;
    }
  }
}
