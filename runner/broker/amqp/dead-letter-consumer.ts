/**
 * Consumes `<prefix>.dead`. A letter's kind comes from where it died (`x-death`'s exchange) or, for
 * one Kiln dead-lettered itself, from its header; so does its reason. A handler that throws (its
 * database is away) leaves the letter in the queue for a later try: a dead letter is never dropped
 * unhandled.
 */
import type { Channel, ConsumeMessage } from 'amqplib';
import type { DeadLetter } from '../../contract/broker.ts';
import { isMessageKind, type MessageKind } from '../../contract/catalog.ts';
import { Attachment, type AttachmentHost, alive } from './attachment.ts';
import { KIND_HEADER, REASON_HEADER } from './stored-consumer.ts';

/** Dead letters handled at once by one consumer. */
const DEAD_LETTER_PREFETCH = 16;
/** How long a letter whose handler failed waits before it goes back to the queue. */
const RETRY_MS = 1_000;

export class DeadLetterAttachment extends Attachment {
  private held = 0;

  constructor(
    host: AttachmentHost,
    private readonly handler: (letter: DeadLetter) => Promise<void>,
  ) {
    super(host);
  }

  protected async setup(channel: Channel): Promise<void> {
    await channel.prefetch(DEAD_LETTER_PREFETCH);
    await this.consume(channel, this.host.names.dead, (message) => this.onMessage(channel, message));
  }

  protected override unsettled(): number {
    return this.held;
  }

  private onMessage(channel: Channel, message: ConsumeMessage): void {
    if (this.cancelled) {
      if (alive(channel)) channel.nack(message, false, true);
      return;
    }
    this.held += 1;
    let settled = false;
    const settle = (requeue: boolean): void => {
      if (settled) return;
      settled = true;
      this.held -= 1;
      if (alive(channel)) {
        if (requeue) channel.nack(message, false, true);
        else channel.ack(message);
      }
      this.closeWhenIdle();
    };
    const headers = message.properties.headers;
    const letter: DeadLetter = {
      kind: this.kindOf(headers),
      body: message.content.toString('utf8'),
      reason: deathReason(headers),
      ack: async () => settle(false),
    };
    void (async () => {
      try {
        await this.handler(letter);
      } catch (err) {
        if (settled) return;
        this.host.logger.error(
          { err, kind: letter.kind, reason: letter.reason },
          'dead-letter handler failed; the letter stays queued',
        );
        setTimeout(() => settle(true), RETRY_MS).unref();
      }
    })();
  }

  private kindOf(headers: Record<string, unknown> | undefined): MessageKind | null {
    const own = headers?.[KIND_HEADER];
    if (typeof own === 'string' && isMessageKind(own)) return own;
    const deaths = headers?.['x-death'];
    const exchange = Array.isArray(deaths)
      ? (deaths[0] as { exchange?: unknown } | undefined)?.exchange
      : null;
    return this.host.names.kindOfExchange(exchange ?? headers?.['x-first-death-exchange']);
  }
}

function deathReason(headers: Record<string, unknown> | undefined): string {
  const own = headers?.[REASON_HEADER];
  if (typeof own === 'string') return own;
  const deaths = headers?.['x-death'];
  if (Array.isArray(deaths)) {
    const reason: unknown = (deaths[0] as { reason?: unknown } | undefined)?.reason;
    if (typeof reason === 'string') return reason;
  }
  const first = headers?.['x-first-death-reason'];
  return typeof first === 'string' ? first : 'unknown';
}
