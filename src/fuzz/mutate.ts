// Mutators for the fuzz harness, all driven by one seeded PRNG so that a (seed, case) pair is a
// reproducer: bytes (bit flips, extreme bytes, truncation, insertion, duplication), JSON trees (a
// field deleted, nulled, given another type, a numeric extreme, a path trick, an array emptied or
// repeated, two siblings swapped) and text (YAML: lines dropped or duplicated, tabs, aliases).

export type Rand = () => number;

export const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const int = (rand: Rand, n: number): number => Math.floor(rand() * n);

/** Numbers that break naive code: signs, zero, fractions, float edges, beyond-safe integers. */
export const EXTREME_NUMBERS = [-1, 0, 1.5, -0.5, 1e308, -1e308, 2 ** 53 + 2, 2 ** 31, -(2 ** 31) - 1, 1e-320, 4294967297, 65536];
/** Strings that break naive code: paths out of a folder, absolute paths, empties, long and odd text. */
export const TRICK_STRINGS = [
  '../../../../etc/passwd',
  '/etc/passwd',
  '',
  '..',
  '.',
  'a'.repeat(5000),
  '\u0000',
  'gpu0',
  'cpu0',
  '-1',
  'NaN',
  '{}',
  '%s%n',
  'C:\\\\x',
  '\ud800',
];

export function mutateBytes(rand: Rand, input: Uint8Array): Uint8Array {
  const b = Uint8Array.from(input);
  switch (int(rand, 6)) {
    case 0: {
      // flip a few bits
      const k = 1 + int(rand, 8);
      for (let i = 0; i < k && b.length > 0; i++) b[int(rand, b.length)]! ^= 1 << int(rand, 8);
      return b;
    }
    case 1: {
      // extreme bytes
      const k = 1 + int(rand, 4);
      for (let i = 0; i < k && b.length > 0; i++) b[int(rand, b.length)] = pick(rand, [0x00, 0xff, 0x7f, 0x80, 0x0a]);
      return b;
    }
    case 2: // truncate
      return b.subarray(0, int(rand, b.length + 1));
    case 3: {
      // insert random bytes
      const at = int(rand, b.length + 1);
      const extra = Uint8Array.from({ length: 1 + int(rand, 16) }, () => int(rand, 256));
      const out = new Uint8Array(b.length + extra.length);
      out.set(b.subarray(0, at));
      out.set(extra, at);
      out.set(b.subarray(at), at + extra.length);
      return out;
    }
    case 4: {
      // duplicate a slice
      if (b.length === 0) return b;
      const from = int(rand, b.length);
      const len = Math.min(b.length - from, 1 + int(rand, 64));
      const out = new Uint8Array(b.length + len);
      out.set(b.subarray(0, from + len));
      out.set(b.subarray(from, from + len), from + len);
      out.set(b.subarray(from + len), from + 2 * len);
      return out;
    }
    default: {
      // zero a run
      if (b.length === 0) return b;
      const from = int(rand, b.length);
      b.fill(0, from, Math.min(b.length, from + 1 + int(rand, 32)));
      return b;
    }
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every (container, key) in the tree, for picking a random place to mutate. */
function places(doc: Json): { parent: Json[] | { [k: string]: Json }; key: string | number }[] {
  const out: { parent: Json[] | { [k: string]: Json }; key: string | number }[] = [];
  const walk = (v: Json, depth: number): void => {
    if (depth > 40 || out.length > 20000) return;
    if (Array.isArray(v))
      v.forEach((x, i) => {
        out.push({ parent: v, key: i });
        walk(x, depth + 1);
      });
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        out.push({ parent: v, key: k });
        walk(x, depth + 1);
      }
  };
  walk(doc, 0);
  return out;
}

function randomValue(rand: Rand, like: Json): Json {
  switch (int(rand, 7)) {
    case 0:
      return null;
    case 1:
      return pick(rand, EXTREME_NUMBERS);
    case 2:
      return pick(rand, TRICK_STRINGS);
    case 3:
      return rand() < 0.5;
    case 4:
      return [];
    case 5:
      return {};
    default:
      return typeof like === 'number' ? -like : typeof like === 'string' ? like + like : [like];
  }
}

/** One to three structural mutations of a parsed JSON document (mutated in place; returned). */
export function mutateJson(rand: Rand, doc: Json): Json {
  const k = 1 + int(rand, 3);
  for (let n = 0; n < k; n++) {
    const ps = places(doc);
    if (ps.length === 0) return randomValue(rand, doc);
    const { parent, key } = pick(rand, ps);
    const get = (): Json => (Array.isArray(parent) ? parent[key as number]! : parent[key as string]!);
    const set = (v: Json): void => {
      if (Array.isArray(parent)) parent[key as number] = v;
      else parent[key as string] = v;
    };
    switch (int(rand, 8)) {
      case 0: // delete
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key as string];
        break;
      case 1:
        set(null);
        break;
      case 2:
        set(randomValue(rand, get()));
        break;
      case 3: {
        const v = get();
        if (typeof v === 'number') set(pick(rand, EXTREME_NUMBERS));
        else set(pick(rand, EXTREME_NUMBERS));
        break;
      }
      case 4:
        set(pick(rand, TRICK_STRINGS));
        break;
      case 5: {
        const v = get();
        if (Array.isArray(v)) set(rand() < 0.5 ? [] : Array.from({ length: Math.min(64, v.length * 4) }, (_, i) => v[i % Math.max(1, v.length)] ?? null));
        else set([v]);
        break;
      }
      case 6: {
        // swap with a sibling
        if (Array.isArray(parent) && parent.length > 1) {
          const j = int(rand, parent.length);
          const t = parent[key as number]!;
          parent[key as number] = parent[j]!;
          parent[j] = t;
        } else set(randomValue(rand, get()));
        break;
      }
      default: {
        const v = get();
        if (typeof v === 'string') set(v.length > 0 ? v.slice(0, int(rand, v.length)) : 'x');
        else set(randomValue(rand, v));
      }
    }
  }
  return doc;
}

/** Text mutations for YAML and other line-based formats. */
export function mutateText(rand: Rand, text: string): string {
  const lines = text.split('\n');
  switch (int(rand, 7)) {
    case 0:
      lines.splice(int(rand, lines.length), 1);
      break;
    case 1: {
      const i = int(rand, lines.length);
      lines.splice(i, 0, lines[i] ?? '');
      break;
    }
    case 2: {
      const i = int(rand, lines.length);
      lines[i] = `\t${lines[i]}`;
      break;
    }
    case 3: {
      const i = int(rand, lines.length);
      lines[i] = (lines[i] ?? '').replace(/[0-9.]+/, pick(rand, ['-1', '0', '1e308', '1e-320', 'NaN', '.inf', '99999999999999999999']));
      break;
    }
    case 4: {
      // an alias bomb
      const bomb = [
        'a0: &a0 [x, x, x, x, x, x, x, x, x]',
        ...Array.from({ length: 9 }, (_, k) => `a${k + 1}: &a${k + 1} [*a${k}, *a${k}, *a${k}, *a${k}, *a${k}, *a${k}, *a${k}, *a${k}, *a${k}]`),
      ];
      lines.splice(int(rand, lines.length), 0, ...bomb);
      break;
    }
    case 5: {
      const i = int(rand, lines.length);
      lines[i] = (lines[i] ?? '').replace(
        /: .*/,
        `: ${pick(
          rand,
          TRICK_STRINGS.filter((s) => !s.includes('\u0000')),
        )}`,
      );
      break;
    }
    default:
      return text.slice(0, int(rand, text.length + 1));
  }
  return lines.join('\n');
}
