import type { Broker, BrokerOptions } from '../contract/broker.ts';
import { AmqpBroker } from './amqp/amqp-broker.ts';
import { MemoryBroker } from './memory/memory-broker.ts';

export interface CreateBrokerOptions extends BrokerOptions {
  /** RabbitMQ URL (`KILN_AMQP_URL`); empty or absent: the in-process broker. */
  url?: string;
}

/** RabbitMQ when a URL is given, the in-process broker otherwise. Call start() before use. */
export function createBroker(options: CreateBrokerOptions = {}): Broker {
  const { url, ...rest } = options;
  return url ? new AmqpBroker({ ...rest, url }) : new MemoryBroker(rest);
}
