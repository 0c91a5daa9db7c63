/**
 * Kafka for Node services: per-project JSON-array batches keyed by `project_id`
 * (SPEC.md §1), idempotent producer, acks=all.
 *
 *     import { kafkaTransport } from '@llm-usage-pipeline/producer/kafka';
 *     configureUsageTracking({ source: 'agents', transport: kafkaTransport({ bootstrapServers: 'broker:9092' }) });
 *
 * The client is `@platformatic/kafka` (an optional peer dependency: `npm i @platformatic/kafka`):
 * maintained, pure TypeScript (its CRC32C falls back to WebAssembly when the optional native
 * module is absent), installs from the npm registry alone, runs on Node 20.19+. kafkajs is
 * unmaintained; @confluentinc/kafka-javascript needs a native librdkafka binary download.
 *
 * Partitions are chosen with Kafka's Java-compatible murmur2 partitioner — the one the
 * Python SDK (aiokafka) uses — so a project's events land in the same partition whichever
 * language produced them, and the worker's per-project windows stay in one partition.
 */
import type { EventBatch } from './batching.js';
import { BatchingTransport, RetryableDeliveryError, type BatchSender, type DeliveryOptions } from './delivery.js';
import { DeliveryRejectedError, TrackingConfigError } from './errors.js';

export const DEFAULT_TOPIC = 'llm.usage.events';

export type KafkaSecurityProtocol = 'PLAINTEXT' | 'SSL' | 'SASL_PLAINTEXT' | 'SASL_SSL';
export type KafkaSaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

/** SPEC.md §5's Kafka settings, the same names for every component. */
export interface KafkaSecurityOptions {
  securityProtocol?: KafkaSecurityProtocol;
  saslMechanism?: KafkaSaslMechanism;
  saslUsername?: string;
  saslPassword?: string;
  /** PEM contents (not paths); `kafkaOptionsFromEnv` reads the files. */
  sslCa?: string;
  sslCert?: string;
  sslKey?: string;
}

export interface KafkaTransportOptions extends DeliveryOptions, KafkaSecurityOptions {
  /** `host:port[,host:port]` or a list. */
  bootstrapServers: string | string[];
  topic?: string;
  clientId?: string;
  /** Per produce request (default 10 s); a timeout is retried. */
  requestTimeoutMs?: number;
}

/** A transport publishing per-project batches to Kafka. */
export function kafkaTransport(options: KafkaTransportOptions): BatchingTransport {
  return new BatchingTransport(new KafkaSender(options), options);
}

/** `host:port` strings, checked; names the setting on a bad value. */
export function parseBootstrapServers(value: string | string[]): string[] {
  const list = (Array.isArray(value) ? value : value.split(',')).map((item) => item.trim()).filter(Boolean);
  if (list.length === 0) throw new TrackingConfigError('KAFKA_BOOTSTRAP_SERVERS is empty: set it to host:port[,host:port]');
  for (const item of list) {
    if (!/^[^:\s]+:\d{1,5}$/.test(item)) {
      throw new TrackingConfigError(`KAFKA_BOOTSTRAP_SERVERS entry ${JSON.stringify(item)} is not host:port`);
    }
  }
  return list;
}

type PlatformaticKafka = typeof import('@platformatic/kafka');
type Producer = InstanceType<PlatformaticKafka['Producer']>;

class KafkaSender implements BatchSender {
  private readonly brokers: string[];
  private readonly topic: string;
  private producer: Promise<{ producer: Producer; partitioner: PlatformaticKafka['compatibilityPartitioner'] }> | undefined;

  constructor(private readonly options: KafkaTransportOptions) {
    this.brokers = parseBootstrapServers(options.bootstrapServers);
    this.topic = options.topic ?? DEFAULT_TOPIC;
    connectionSecurity(options); // validate at configuration time, not at the first send
  }

  async send(batch: EventBatch): Promise<void> {
    const { producer, partitioner } = await this.connect();
    try {
      await producer.send({
        messages: [{ topic: this.topic, key: Buffer.from(batch.projectId), value: Buffer.from(batch.payload) }],
        partitioner,
      });
    } catch (error) {
      const text = errorText(error);
      if (/MESSAGE_TOO_LARGE|RecordTooLarge|INVALID_RECORD/i.test(text)) {
        throw new DeliveryRejectedError(`Kafka refused ${batch.eventIds.length} events of project ${batch.projectId}: ${text}`, undefined, batch.eventIds);
      }
      throw new RetryableDeliveryError(`publishing to Kafka ${this.brokers.join(',')} failed: ${text}`);
    }
  }

  async close(): Promise<void> {
    const pending = this.producer;
    this.producer = undefined;
    if (pending) await (await pending).producer.close(true);
  }

  private connect(): Promise<{ producer: Producer; partitioner: PlatformaticKafka['compatibilityPartitioner'] }> {
    this.producer ??= loadClient().then((kafka) => ({
      producer: new kafka.Producer({
        clientId: this.options.clientId ?? 'llm-usage-producer-ts',
        bootstrapBrokers: this.brokers,
        idempotent: true,
        acks: -1,
        requestTimeout: this.options.requestTimeoutMs ?? 10_000,
        connectTimeout: this.options.requestTimeoutMs ?? 10_000,
        retries: 0, // our own retry loop backs off and keeps the batch
        ...connectionSecurity(this.options),
      }),
      partitioner: kafka.compatibilityPartitioner,
    }));
    // A failed load is not cached: the next send tries again (and reports why).
    this.producer.catch(() => {
      this.producer = undefined;
    });
    return this.producer;
  }
}

async function loadClient(): Promise<PlatformaticKafka> {
  try {
    return await import('@platformatic/kafka');
  } catch (error) {
    throw new DeliveryRejectedError(
      `the Kafka transport needs @platformatic/kafka: npm install @platformatic/kafka (${errorText(error)})`,
      undefined,
      [],
    );
  }
}

/** TLS and SASL options for the client, from SPEC §5's settings; throws naming a bad one. */
export function connectionSecurity(options: KafkaSecurityOptions): Record<string, unknown> {
  const protocol = options.securityProtocol ?? 'PLAINTEXT';
  if (!['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'].includes(protocol)) {
    throw new TrackingConfigError(`KAFKA_SECURITY_PROTOCOL=${protocol}: use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL`);
  }
  const out: Record<string, unknown> = {};
  if (protocol === 'SSL' || protocol === 'SASL_SSL') {
    out['tls'] = {
      ...(options.sslCa ? { ca: options.sslCa } : {}),
      ...(options.sslCert ? { cert: options.sslCert } : {}),
      ...(options.sslKey ? { key: options.sslKey } : {}),
    };
  }
  if (protocol === 'SASL_PLAINTEXT' || protocol === 'SASL_SSL') {
    const mechanism = options.saslMechanism ?? 'PLAIN';
    if (!['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'].includes(mechanism)) {
      throw new TrackingConfigError(`KAFKA_SASL_MECHANISM=${mechanism}: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`);
    }
    if (!options.saslUsername || !options.saslPassword) {
      throw new TrackingConfigError(`KAFKA_SECURITY_PROTOCOL=${protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD`);
    }
    out['sasl'] = { mechanism, username: options.saslUsername, password: options.saslPassword };
  }
  return out;
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const nested = (error as Error & { errors?: unknown[] }).errors;
    const details = Array.isArray(nested) && nested.length ? ` (${nested.map((item) => errorText(item)).join('; ')})` : '';
    return `${error.message}${details}`;
  }
  return String(error);
}
