/**
 * The JSON patch (RFC 6902) that turns one JSON document into another, computed as a diff (as
 * pepr does) so the webhook never writes patch operations by hand.
 *
 * Deliberately simple: objects are compared key by key; an array that differs at all is replaced
 * whole. Index-level array ops go wrong as soon as two ops shift the same array (and the API
 * server applies the patch to the object it sent, so a whole-array replace is always exact).
 */

/** One RFC 6902 operation; the diff only ever emits add, remove and replace. */
export interface JsonPatchOp {
  readonly op: 'add' | 'remove' | 'replace';
  readonly path: string;
  readonly value?: unknown;
}

/** RFC 6901 escaping of one reference token: `~` -> `~0`, `/` -> `~1` (in that order). */
export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Structural equality of JSON values; an `undefined` property counts as absent. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = definedKeys(a);
    const kb = definedKeys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

function definedKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o).filter((k) => o[k] !== undefined);
}

/**
 * The operations that make `before` equal to `after`: removals first within each object, then
 * additions and replacements, in the key order of the documents. Equal documents give `[]`.
 */
export function diffToJsonPatch(before: unknown, after: unknown): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  diff(before, after, '', ops);
  return ops;
}

function diff(before: unknown, after: unknown, path: string, ops: JsonPatchOp[]): void {
  if (jsonEqual(before, after)) return;
  if (!isObject(before) || !isObject(after)) {
    ops.push({ op: 'replace', path, value: after });
    return;
  }
  for (const key of definedKeys(before)) {
    if (after[key] === undefined) ops.push({ op: 'remove', path: `${path}/${escapePointerToken(key)}` });
  }
  for (const key of definedKeys(after)) {
    const child = `${path}/${escapePointerToken(key)}`;
    if (before[key] === undefined) {
      ops.push({ op: 'add', path: child, value: after[key] });
    } else {
      diff(before[key], after[key], child, ops);
    }
  }
}

/** Applies a patch made by `diffToJsonPatch` (add, remove, replace on objects only); for tests and checks. */
export function applyJsonPatch(doc: unknown, ops: readonly JsonPatchOp[]): unknown {
  let root = structuredClone(doc);
  for (const op of ops) {
    if (op.path === '') {
      if (op.op === 'remove') throw new Error('cannot remove the document root');
      root = structuredClone(op.value);
      continue;
    }
    const tokens = op.path
      .slice(1)
      .split('/')
      .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = tokens.pop() as string;
    let parent: unknown = root;
    for (const t of tokens) {
      if (!isObject(parent) || !Object.hasOwn(parent, t)) throw new Error(`path ${op.path} does not exist`);
      parent = parent[t];
    }
    if (!isObject(parent)) throw new Error(`parent of ${op.path} is not an object`);
    if (op.op === 'remove' || op.op === 'replace') {
      if (!Object.hasOwn(parent, last)) throw new Error(`${op.op} ${op.path}: no such member`);
    }
    if (op.op === 'remove') delete parent[last];
    else parent[last] = structuredClone(op.value);
  }
  return root;
}
