/**
 * Token usage in every shape the Vercel AI SDK hands out, mapped to the wire's one shape
 * (inputs include cache reads and writes, outputs include reasoning). Pure.
 *
 * - Language model spec v3 (AI SDK 6, what middleware sees): `inputTokens: {total,
 *   noCache, cacheRead, cacheWrite}`, `outputTokens: {total, text, reasoning}`.
 * - Spec v2 (AI SDK 5): numbers `inputTokens`, `outputTokens`, `reasoningTokens`,
 *   `cachedInputTokens`. Anthropic's v5 provider reports `inputTokens` *without* its cache
 *   reads and writes (writes only in `providerMetadata.anthropic.cacheCreationInputTokens`),
 *   so they are added back here; otherwise cached prompts would be billed as free.
 * - The caller-facing `LanguageModelUsage` of AI SDK 6 (`inputTokenDetails`,
 *   `outputTokenDetails`) and of AI SDK 5 (the v2 numbers), as `trackAIOperation` sees it.
 *
 * A field that is missing is never guessed: no usage at all maps to `undefined`, which the
 * event then reports as "usage not reported". Parts larger than their total (a provider
 * bug) raise the total to the parts and say so in `adjusted`, because the pipeline would
 * otherwise dead-letter the event.
 */
import type { WireUsage } from './event.js';

export interface MappedUsage {
  usage: WireUsage;
  /** Notes on what had to be corrected, for `provider_metadata`. */
  adjusted?: string;
}

type Json = Record<string, unknown>;

/** Map any AI SDK usage object (v2, v3 or LanguageModelUsage); undefined if it has no counts. */
export function mapUsage(raw: unknown, provider?: string, providerMetadata?: unknown): MappedUsage | undefined {
  if (!isObject(raw)) return undefined;
  if (isObject(raw['inputTokens']) || isObject(raw['outputTokens'])) return fromSpecV3(raw);
  if (isObject(raw['inputTokenDetails']) || isObject(raw['outputTokenDetails'])) return fromLanguageModelUsageV6(raw);
  return fromSpecV2(raw, provider, providerMetadata);
}

function fromSpecV3(raw: Json): MappedUsage | undefined {
  const input = isObject(raw['inputTokens']) ? raw['inputTokens'] : {};
  const output = isObject(raw['outputTokens']) ? raw['outputTokens'] : {};
  const noCache = count(input['noCache']);
  const cacheRead = count(input['cacheRead']);
  const cacheWrite = count(input['cacheWrite']);
  const text = count(output['text']);
  const reasoning = count(output['reasoning']);
  const inputTotal = count(input['total']) ?? sumIfAny(noCache, cacheRead, cacheWrite);
  const outputTotal = count(output['total']) ?? sumIfAny(text, reasoning);
  return assemble(inputTotal, outputTotal, cacheRead, cacheWrite, reasoning);
}

function fromLanguageModelUsageV6(raw: Json): MappedUsage | undefined {
  const input = isObject(raw['inputTokenDetails']) ? raw['inputTokenDetails'] : {};
  const output = isObject(raw['outputTokenDetails']) ? raw['outputTokenDetails'] : {};
  const noCache = count(input['noCacheTokens']);
  const cacheRead = count(input['cacheReadTokens']) ?? count(raw['cachedInputTokens']);
  const cacheWrite = count(input['cacheWriteTokens']);
  const text = count(output['textTokens']);
  const reasoning = count(output['reasoningTokens']) ?? count(raw['reasoningTokens']);
  const inputTotal = count(raw['inputTokens']) ?? sumIfAny(noCache, cacheRead, cacheWrite);
  const outputTotal = count(raw['outputTokens']) ?? sumIfAny(text, reasoning);
  return assemble(inputTotal, outputTotal, cacheRead, cacheWrite, reasoning);
}

function fromSpecV2(raw: Json, provider?: string, providerMetadata?: unknown): MappedUsage | undefined {
  let input = count(raw['inputTokens']);
  const output = count(raw['outputTokens']);
  const cacheRead = count(raw['cachedInputTokens']);
  const reasoning = count(raw['reasoningTokens']);
  let cacheWrite: number | undefined;
  if (provider !== undefined && provider.toLowerCase().includes('anthropic')) {
    const anthropic = isObject(providerMetadata) && isObject(providerMetadata['anthropic']) ? providerMetadata['anthropic'] : {};
    cacheWrite = count(anthropic['cacheCreationInputTokens']);
    if (input !== undefined) input += (cacheRead ?? 0) + (cacheWrite ?? 0);
  }
  return assemble(input, output, cacheRead, cacheWrite, reasoning);
}

function assemble(
  input: number | undefined,
  output: number | undefined,
  cacheRead: number | undefined,
  cacheWrite: number | undefined,
  reasoning: number | undefined,
): MappedUsage | undefined {
  if ([input, output, cacheRead, cacheWrite, reasoning].every((value) => value === undefined)) return undefined;
  const usage: WireUsage = {
    input_tokens: input ?? 0,
    output_tokens: output ?? 0,
    cache_read_tokens: cacheRead ?? 0,
    cache_write_tokens: cacheWrite ?? 0,
    reasoning_tokens: reasoning ?? 0,
  };
  const notes: string[] = [];
  const cached = usage.cache_read_tokens + usage.cache_write_tokens;
  if (cached > usage.input_tokens) {
    notes.push(`input_tokens ${usage.input_tokens} raised to cache reads + writes ${cached}`);
    usage.input_tokens = cached;
  }
  if (usage.reasoning_tokens > usage.output_tokens) {
    notes.push(`output_tokens ${usage.output_tokens} raised to reasoning ${usage.reasoning_tokens}`);
    usage.output_tokens = usage.reasoning_tokens;
  }
  return notes.length ? { usage, adjusted: notes.join('; ') } : { usage };
}

/** A token count: a finite non-negative number, truncated to an integer; anything else is unknown. */
function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.trunc(value) : undefined;
}

function sumIfAny(...values: (number | undefined)[]): number | undefined {
  return values.some((value) => value !== undefined) ? values.reduce<number>((sum, value) => sum + (value ?? 0), 0) : undefined;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The billing provider id from an AI SDK model's `provider` (`openai.chat` -> `openai`). */
export function providerId(modelProvider: string | undefined): string | undefined {
  if (!modelProvider) return undefined;
  const lowered = modelProvider.toLowerCase();
  // AI SDK provider strings are `<provider>.<api>`; a few ids differ from the catalog's.
  for (const [prefix, id] of PROVIDER_ALIASES) {
    if (lowered === prefix || lowered.startsWith(`${prefix}.`)) return id;
  }
  return lowered.split('.')[0];
}

const PROVIDER_ALIASES: readonly (readonly [string, string])[] = [
  ['google.vertex.anthropic', 'anthropic'],
  ['google.generative-ai', 'google'],
  ['google.vertex', 'google'],
  ['azure-openai', 'azure'],
  ['amazon-bedrock', 'aws'],
  ['xai', 'x-ai'],
];

/** OpenRouter's own cost for the call, as a decimal string, when its metadata carries it. */
export function providerCost(providerMetadata: unknown): string | undefined {
  if (!isObject(providerMetadata) || !isObject(providerMetadata['openrouter'])) return undefined;
  const usage = providerMetadata['openrouter']['usage'];
  const cost = isObject(usage) ? usage['cost'] : undefined;
  return typeof cost === 'number' && Number.isFinite(cost) && cost >= 0 ? decimalString(cost) : undefined;
}

function decimalString(value: number): string {
  // Number#toString may use exponent notation (1e-7); the schema accepts it, keep it plain anyway.
  const text = value.toString();
  return /e/i.test(text) ? value.toFixed(20).replace(/0+$/, '').replace(/\.$/, '') : text;
}
