/**
 * Configuration from the environment, for Node services — the same variables as the
 * Python SDK and the pipeline (README "Configuration"). Read only when called.
 *
 *     import { configureUsageTracking } from '@llm-usage-pipeline/producer';
 *     import { trackingConfigFromEnv } from '@llm-usage-pipeline/producer/node';
 *     configureUsageTracking(await trackingConfigFromEnv({ source: 'agents-api' }));
 *
 * | variable | meaning |
 * |---|---|
 * | `USAGE_INGEST_URL`, `USAGE_INGEST_API_KEY` | send to ingest-http with this key |
 * | `KAFKA_BOOTSTRAP_SERVERS`, `USAGE_EVENTS_TOPIC` | or publish to Kafka (when no ingest URL) |
 * | `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`, `KAFKA_SSL_CAFILE/CERTFILE/KEYFILE` | Kafka security (SPEC §5) |
 * | `USAGE_TRACKING_SOURCE`, `USAGE_TRACKING_PROJECT_ID` | defaults for events |
 * | `USAGE_TRACKING_DISABLED` | `1`: publish nothing (handlers still run) |
 */
import { readFile } from 'node:fs/promises';

import { TrackingConfigError } from './errors.js';
import { kafkaTransport, type KafkaSaslMechanism, type KafkaSecurityProtocol } from './kafka.js';
import type { UsageTrackingConfig } from './tracking.js';

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['', '0', 'false', 'no', 'off']);

/** `overrides` completed from `env`: where to send, defaults, kill switch. */
export async function trackingConfigFromEnv(
  overrides: UsageTrackingConfig = {},
  env: Record<string, string | undefined> = process.env,
): Promise<UsageTrackingConfig> {
  const config: UsageTrackingConfig = { ...overrides };
  config.disabled ??= flag(env, 'USAGE_TRACKING_DISABLED');
  config.source ??= env['USAGE_TRACKING_SOURCE'] || undefined;
  config.projectId ??= env['USAGE_TRACKING_PROJECT_ID'] || undefined;
  if (config.http || config.transport !== undefined || config.disabled) return config;
  const ingestUrl = env['USAGE_INGEST_URL'];
  if (ingestUrl) {
    config.http = { url: ingestUrl, apiKey: env['USAGE_INGEST_API_KEY'] || undefined };
    return config;
  }
  const bootstrap = env['KAFKA_BOOTSTRAP_SERVERS'];
  if (bootstrap) {
    config.transport = kafkaTransport({
      bootstrapServers: bootstrap,
      topic: env['USAGE_EVENTS_TOPIC'] || undefined,
      securityProtocol: (env['KAFKA_SECURITY_PROTOCOL'] || undefined) as KafkaSecurityProtocol | undefined,
      saslMechanism: (env['KAFKA_SASL_MECHANISM'] || undefined) as KafkaSaslMechanism | undefined,
      saslUsername: env['KAFKA_SASL_USERNAME'] || undefined,
      saslPassword: env['KAFKA_SASL_PASSWORD'] || undefined,
      sslCa: await pem(env, 'KAFKA_SSL_CAFILE'),
      sslCert: await pem(env, 'KAFKA_SSL_CERTFILE'),
      sslKey: await pem(env, 'KAFKA_SSL_KEYFILE'),
    });
    return config;
  }
  throw new TrackingConfigError(
    'usage events have nowhere to go: set USAGE_INGEST_URL (and USAGE_INGEST_API_KEY) or KAFKA_BOOTSTRAP_SERVERS, ' +
      'or set USAGE_TRACKING_DISABLED=1 to only call your handler',
  );
}

function flag(env: Record<string, string | undefined>, name: string): boolean {
  const value = (env[name] ?? '').trim().toLowerCase();
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  throw new TrackingConfigError(`${name}=${JSON.stringify(value)}: use 1/true/yes to disable publishing, 0/false/no or unset otherwise`);
}

async function pem(env: Record<string, string | undefined>, name: string): Promise<string | undefined> {
  const path = env[name];
  if (!path) return undefined;
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new TrackingConfigError(`${name}=${path} cannot be read: ${(error as Error).message}`);
  }
}
