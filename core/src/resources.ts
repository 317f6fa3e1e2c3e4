/**
 * Container resources as telepresence-ts sets them (install's `--<program>-requests/limits`, the
 * agent's resources in its configuration and in TP_AGENT_RESOURCES): Kubernetes quantities, their
 * exact values, and the checks that refuse what the API server or the kubelet would refuse later.
 * Dependency-free (the Kubernetes type is erased), so that the in-cluster programs can use it.
 */
import type { V1ResourceRequirements } from './kube/kube-types.js';

/**
 * The container resources that can be set. Extended resources (GPUs and the like) are no use to
 * any of the programs, and a name outside this list is far more often a typo (`mem`, `cpus`).
 */
export const INSTALL_RESOURCE_NAMES = ['cpu', 'memory', 'ephemeral-storage'] as const;

/**
 * A Kubernetes quantity (apimachinery's resource.Quantity): a number, then an SI or binary suffix
 * or an exponent. Written once as text, for the chart's values.schema.json too (RE2 reads it).
 */
export const QUANTITY_PATTERN = '^([+-]?)(\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE]([+-]?\\d{1,3})|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$';
const QUANTITY = new RegExp(QUANTITY_PATTERN);
const BINARY_POWER: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL_POWER: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/** A quantity's exact value as a fraction (cpu `0.1` and `100m` are equal, which floating point does not promise). */
export interface Fraction {
  readonly num: bigint;
  readonly den: bigint;
}

/** The value of a quantity, or undefined when `text` is not one. Negative quantities are values here; callers refuse them. */
export function quantityValue(text: string): Fraction | undefined {
  const m = QUANTITY.exec(text);
  if (m === null) return undefined;
  const [, sign = '', number = '', exponent, suffix] = m;
  const [whole = '', fraction = ''] = number.split('.');
  let num = BigInt(`${whole}${fraction}` || '0') * (sign === '-' ? -1n : 1n);
  let den = 10n ** BigInt(fraction.length);
  const power10 = exponent !== undefined ? Number(exponent) : suffix !== undefined ? (DECIMAL_POWER[suffix] ?? 0) : 0;
  if (power10 >= 0) num *= 10n ** BigInt(power10);
  else den *= 10n ** BigInt(-power10);
  if (suffix !== undefined && suffix in BINARY_POWER) num *= 1024n ** BigInt(BINARY_POWER[suffix] ?? 0);
  return { num, den };
}

/** Negative, zero or positive as `a` is below, equal to or above `b`. */
export function compareQuantities(a: Fraction, b: Fraction): number {
  const left = a.num * b.den;
  const right = b.num * a.den;
  return left < right ? -1 : left > right ? 1 : 0;
}

/** Why `quantity` cannot be the amount of resource `name`, or undefined when it can be. */
export function quantityProblem(name: string, quantity: string): string | undefined {
  const value = quantityValue(quantity);
  if (value === undefined) return `${name}=${quantity}: ${JSON.stringify(quantity)} is not a Kubernetes quantity`;
  if (value.num < 0n) return `${name}=${quantity} is negative`;
  if (name !== 'cpu' && value.num % value.den !== 0n) {
    // `memory=128m` is 0.128 bytes, accepted by the API server and then fatal to the container.
    return `${name}=${quantity} is not a whole number of bytes (m means thousandths: 128Mi or 128M was probably meant)`;
  }
  return undefined;
}

const LISTS = ['limits', 'requests'] as const;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A quantity as JSON may carry it: Helm's `--set requests.cpu=1` makes a number of it. */
function quantityText(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined;
}

/**
 * Why `value` (parsed JSON) is not container resources as telepresence-ts sets them, or undefined:
 * an object of `requests` and `limits` only, each mapping names of INSTALL_RESOURCE_NAMES to
 * quantities (strings, or numbers), no request above its limit.
 */
export function resourcesProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'not an object of requests and limits';
  const other = Object.keys(value).find((k) => !(LISTS as readonly string[]).includes(k));
  if (other !== undefined) return `${JSON.stringify(other)} is not one of ${LISTS.join(', ')}`;
  for (const list of LISTS) {
    const entries = value[list];
    if (entries === undefined) continue;
    if (!isRecord(entries)) return `${list} is not an object of name: quantity`;
    for (const [name, raw] of Object.entries(entries)) {
      if (!(INSTALL_RESOURCE_NAMES as readonly string[]).includes(name)) return `${list}: ${JSON.stringify(name)} is not one of ${INSTALL_RESOURCE_NAMES.join(', ')}`;
      const quantity = quantityText(raw);
      const problem = quantity === undefined ? `${name}: ${JSON.stringify(raw)} is not a quantity` : quantityProblem(name, quantity);
      if (problem !== undefined) return `${list}: ${problem}`;
    }
  }
  const requests = isRecord(value['requests']) ? value['requests'] : {};
  const limits = isRecord(value['limits']) ? value['limits'] : {};
  for (const [name, raw] of Object.entries(requests)) {
    const request = quantityValue(quantityText(raw) ?? '');
    const limit = quantityValue(quantityText(limits[name]) ?? '');
    if (request !== undefined && limit !== undefined && compareQuantities(request, limit) > 0) {
      return `the ${name} request ${String(raw)} is above its limit ${String(limits[name])}, which Kubernetes refuses`;
    }
  }
  return undefined;
}

/**
 * Resources that passed `resourcesProblem`, in one canonical form: quantities as strings, keys in
 * sorted order (as Helm's toJson writes them), empty lists left out; undefined when nothing is set.
 * Equal settings so give equal text, and so equal agent configurations and hashes.
 */
export function canonicalResources(value: V1ResourceRequirements | Record<string, unknown>): V1ResourceRequirements | undefined {
  const out: Record<string, Record<string, string>> = {};
  for (const list of LISTS) {
    const entries = (value as Record<string, unknown>)[list];
    if (!isRecord(entries)) continue;
    const names = Object.keys(entries).sort();
    if (names.length > 0) out[list] = Object.fromEntries(names.map((n) => [n, quantityText(entries[n]) ?? '']));
  }
  return Object.keys(out).length === 0 ? undefined : out;
}
