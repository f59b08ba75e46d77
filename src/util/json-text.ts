// JSON text in pieces: exactly the bytes of `JSON.stringify(value, null, 1) + '\n'` (or, compact,
// of `JSON.stringify(value) + '\n'`), written through a small reused buffer instead of one string
// and one buffer the size of the whole text.
// A 275k-node plan.json is ~124 MB: as one string plus its encoded copy it is ~250 MB of fresh
// memory at the end of planning, and on this kind of machine first-touching memory costs ~11 µs
// per 4 KiB page (~0.35 s per 124 MB) besides the copies.
//
// Containers near the top (the plan's sections, each device) are opened here, member by member,
// in JSON.stringify's order (Object.keys; members whose value is undefined, a function or a symbol
// left out; those array elements written as null); a long one (a device's steps, the assignment,
// the transfers) is written a slice of members at a time, each slice JSON.stringify's own text at
// its depth, as is any value below SPLIT_DEPTH. Compact text (a trace) opens its top object and
// writes the lists in it a slice at a time.

/** Containers at depths below this are written member by member; deeper values in one piece. */
const SPLIT_DEPTH = 4;
/** The same for compact text: the elements of the lists in its top object are written whole. */
const COMPACT_SPLIT_DEPTH = 2;
/**
 * Compact elements are written by one JSON.stringify call per slice of about this many characters:
 * the 91k events of the DeepSeek-V3 plan's trace, one call each, took ~2.5x the time; a string past
 * 128 KiB would be allocated on fresh pages of its own.
 */
const SLICE_UNITS = 1 << 14;

/** How JSON.stringify is asked to indent: one space per level, or not at all (compact text). */
export type JsonSpace = 0 | 1;

/** Newline and indentation of a line at each depth (one space per level); none in compact text. */
const newlines: string[] = [];
const newlineAt = (depth: number, space: JsonSpace): string => (space === 0 ? '' : (newlines[depth] ??= '\n' + ' '.repeat(depth)));

/**
 * JSON.stringify's text of `value` as it appears at `depth`: its own text with every line after the
 * first indented `depth` more (a JSON text has a raw newline only between its lines: inside a
 * string one is written \n). Nested `depth` deep in one-element arrays, the value is indented so by
 * JSON.stringify itself, and a slice cuts off the brackets' lines around it without copying the
 * text (re-indenting a copy with replaceAll, the writer allocated 90 MB more over the DeepSeek-V3
 * plan.json). A toJSON of the value itself is called with the key "0", not "" (the plan has none).
 */
function textAt(value: unknown, depth: number, space: JsonSpace): string {
  // (Compact text is the same at every depth.)
  if (space === 0) return JSON.stringify(value) ?? 'null';
  if (depth === 0 || value === null || typeof value !== 'object') return JSON.stringify(value, null, 1) ?? 'null';
  let nested: unknown = value;
  for (let k = 0; k < depth; k++) nested = [nested];
  const text = JSON.stringify(nested, null, 1);
  // Before: "[", newline and k spaces for k = 1 … depth; after: newline, k spaces and "]" for k = depth − 1 … 0.
  return text.slice(2 * depth + (depth * (depth + 1)) / 2, text.length - 2 * depth - (depth * (depth - 1)) / 2);
}

/** A plain object or array JSON.stringify would walk member by member (no toJSON). */
function isPlain(value: unknown): value is Record<string, unknown> | unknown[] {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return true;
  const proto = Object.getPrototypeOf(value);
  return (proto === Object.prototype || proto === null) && typeof (value as { toJSON?: unknown }).toJSON !== 'function';
}

/** Whether JSON.stringify leaves an object member out. */
function omitted(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

/**
 * Emit a container of `length` elements (or members) as its text at `depth`, a slice at a time:
 * `slice(from, to)` gives a list (or an object) of those elements (members), and its one
 * JSON.stringify call, at that depth, has between its brackets the slice's part of the
 * whole (a hole or an omitted value in a list is null there too; an element's toJSON is called with
 * its index in the slice). A slice's count follows the text of the last one, so a slice stays near
 * SLICE_UNITS however long its items are. One call per element or member (the steps of the
 * DeepSeek-V3 plan's devices, 150k of them) took plan.json's writer ~2.2 s against ~1.0 s for one
 * JSON.stringify of the whole plan.
 */
function emitSlices(
  length: number,
  slice: (from: number, to: number) => unknown[] | Record<string, unknown>,
  open: string,
  close: string,
  depth: number,
  space: JsonSpace,
  emit: (text: string) => void,
): void {
  // The text of a slice ends with a newline, the indentation of `depth` and the closing bracket.
  const tail = newlineAt(depth, space).length + 1;
  let count = 16;
  let first = true;
  for (let i = 0; i < length; ) {
    const end = Math.min(length, i + count);
    const text = textAt(slice(i, end), depth, space);
    // (An object's slice whose members are all left out is "{}": nothing of the whole.)
    if (text.length > 2) {
      emit((first ? open : ',') + text.slice(1, text.length - tail));
      first = false;
    }
    count = Math.max(1, Math.min(4096, Math.floor((count * SLICE_UNITS) / Math.max(1, text.length))));
    i = end;
  }
  emit(first ? open + close : newlineAt(depth, space) + close);
}

/** A container with at least this many elements or members is written in slices (emitSlices). */
const SLICED_LENGTH = 64;

/** Emit the pieces of `value`'s text at `depth` (JSON.stringify(value, null, space) at that depth). */
function emitValue(value: unknown, depth: number, space: JsonSpace, emit: (text: string) => void): void {
  if (depth >= (space === 0 ? COMPACT_SPLIT_DEPTH : SPLIT_DEPTH) || !isPlain(value)) {
    emit(textAt(value, depth, space));
    return;
  }
  const inner = newlineAt(depth + 1, space);
  if (Array.isArray(value)) {
    if (value.length === 0) {
      emit('[]');
      return;
    }
    if (value.length >= SLICED_LENGTH || (space === 0 && depth + 1 >= COMPACT_SPLIT_DEPTH)) {
      emitSlices(value.length, (from, to) => value.slice(from, to), '[', ']', depth, space, emit);
      return;
    }
    for (let i = 0; i < value.length; i++) {
      emit(i === 0 ? '[' + inner : ',' + inner);
      const v = value[i];
      if (omitted(v)) emit('null');
      else emitValue(v, depth + 1, space, emit);
    }
    emit(newlineAt(depth, space) + ']');
    return;
  }
  const keys = Object.keys(value);
  if (keys.length >= SLICED_LENGTH) {
    // A slice of members is an object without a prototype (a member "__proto__" stays a member)
    // holding them in order: integer-like keys come first, ascending, in both, the rest as inserted.
    const slice = (from: number, to: number): Record<string, unknown> => {
      const part: Record<string, unknown> = Object.create(null);
      for (const key of keys.slice(from, to)) part[key] = value[key];
      return part;
    };
    emitSlices(keys.length, slice, '{', '}', depth, space, emit);
    return;
  }
  let first = true;
  for (const key of keys) {
    const v = value[key];
    if (omitted(v)) continue;
    emit((first ? '{' : ',') + inner + JSON.stringify(key) + (space === 0 ? ':' : ': '));
    first = false;
    emitValue(v, depth + 1, space, emit);
  }
  emit(first ? '{}' : newlineAt(depth, space) + '}');
}

/** The pieces of `JSON.stringify(value, null, space) + '\n'`, in order. */
export function jsonPieces(value: unknown, emit: (text: string) => void, space: JsonSpace = 1): void {
  emitValue(value, 0, space, emit);
  emit('\n');
}

/**
 * Write `JSON.stringify(value, null, space) + '\n'` as UTF-8 to `sink`, in chunks of at most
 * `chunkBytes` from one reused buffer (each chunk is valid only during the call: the sink must
 * copy or consume it, as hash.update and fs.writeSync do; `chunkBytes` ≥ 4). A piece longer than
 * the buffer is written in slices, never cutting a UTF-16 surrogate pair.
 */
export function writeJson(value: unknown, sink: (bytes: Uint8Array) => void, chunkBytes = 1 << 20, space: JsonSpace = 1): void {
  const out = textWriter(sink, chunkBytes);
  jsonPieces(value, out.write, space);
  out.end();
}

/** Text written in pieces as UTF-8 (writeJson's writer; src/sim/trace-text.ts writes a trace with it). */
export interface TextWriter {
  write(text: string): void;
  /** Writes what is left: nothing may be written after it. */
  end(): void;
}

/**
 * Text written as UTF-8 to `sink` in chunks of at most `chunkBytes` from one reused buffer, as
 * writeJson writes (each chunk valid only during the call; `chunkBytes` ≥ 4).
 */
export function textWriter(sink: (bytes: Uint8Array) => void, chunkBytes = 1 << 20): TextWriter {
  if (chunkBytes < 4) throw new Error(`writeJson: a chunk of ${chunkBytes} bytes cannot hold every character`);
  const buf = Buffer.allocUnsafe(chunkBytes);
  let used = 0;
  const flush = (): void => {
    if (used > 0) sink(buf.subarray(0, used));
    used = 0;
  };
  // One UTF-16 unit is at most 3 UTF-8 bytes (a surrogate pair, 2 units, is 4).
  const maxUnits = Math.floor(chunkBytes / 3);
  const put = (text: string): void => {
    if (text.length * 3 > chunkBytes - used) {
      const bytes = Buffer.byteLength(text, 'utf8');
      if (bytes > chunkBytes - used) flush();
      if (bytes > chunkBytes) {
        // In slices of at most maxUnits units (at most chunkBytes bytes each), a surrogate pair kept whole (4 bytes).
        for (let at = 0; at < text.length; ) {
          let end = Math.min(text.length, at + maxUnits);
          const last = text.charCodeAt(end - 1);
          if (end < text.length && last >= 0xd800 && last <= 0xdbff) end = end - 1 > at ? end - 1 : end + 1;
          put(text.slice(at, end));
          at = end;
        }
        return;
      }
    }
    used += buf.write(text, used, 'utf8');
  };
  // Pieces are mostly a few bytes (a key, a comma and an indentation): joined as one string until
  // it is long enough, then encoded in one call (a write per piece cost more than the encoding).
  const JOIN_UNITS = Math.min(1 << 14, maxUnits);
  let pending = '';
  return {
    write(text) {
      if (text.length >= JOIN_UNITS) {
        // A long piece (a whole value's text) goes as it is, not copied into the joined string.
        if (pending.length > 0) put(pending);
        pending = '';
        put(text);
        return;
      }
      pending += text;
      if (pending.length >= JOIN_UNITS) {
        put(pending);
        pending = '';
      }
    },
    end() {
      if (pending.length > 0) put(pending);
      pending = '';
      flush();
    },
  };
}
