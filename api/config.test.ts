import { describe, expect, it } from 'vitest';
import { loadRunnerConfig } from '../runner/config.ts';
import { loadApiConfig } from './config.ts';

describe('loadApiConfig', () => {
  it('reads the broker settings and the log level as the runner does, in the same words', () => {
    const env = {
      KILN_AMQP_URL: 'localhost:5672',
      KILN_BROKER_PREFIX: 'kiln tests',
      KILN_DELIVERY_LIMIT: '0',
      KILN_LOG_LEVEL: 'loud',
    };
    const api = loadApiConfig(env);
    const runner = loadRunnerConfig(env);
    expect(api.ok).toBe(false);
    expect(runner.ok).toBe(false);
    if (api.ok || runner.ok) return;
    expect(api.problems).toHaveLength(4);
    expect(runner.problems).toEqual(expect.arrayContaining(api.problems));
  });

  it('takes a blank variable for its default', () => {
    const result = loadApiConfig({ KILN_AMQP_URL: '', KILN_BROKER_PREFIX: ' ', KILN_DELIVERY_LIMIT: '' });
    expect(result).toMatchObject({
      ok: true,
      config: { amqpUrl: '', brokerPrefix: 'kiln', deliveryLimit: 5, logLevel: 'info' },
    });
  });
});
