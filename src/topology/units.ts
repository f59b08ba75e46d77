// Human units in topology files → SI numbers (bytes, bytes/s, FLOP/s, seconds), and back for printing.
// People write `80GiB`, `3.35TB/s`, `400Gb/s`, `989TFLOPS`, `2us`; a unit that is not one of these
// is an error (HXC2303) that quotes the text, never a silent guess. Relies only on diagnostics.

import { HxcError } from '../diag/diagnostics.js';

/** A number: `80`, `3.35`, `.5`, `1e3`, `2.5E-6`. No sign: negative quantities are never meaningful here. */
const QUANTITY = /^(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?[ \t]*(\S*)$/;
// Number, optional blanks, then the unit; the unit itself has no blanks (so `80 GB /s` and `80 GB/` fail).

/**
 * A unit's scale: value = number × 10^e10 × mul. Decimal scales are applied by shifting the decimal
 * exponent of the text (so `3.35TB/s` is exactly 3.35e12 and `5us` exactly 5e-6, with no rounding from
 * a multiplication); `mul` is a power of two (binary units, bits → bytes), which is exact.
 */
interface Scale {
  e10: number;
  mul: number;
}
const dec = (e10: number): Scale => ({ e10, mul: 1 });
const bin = (mul: number): Scale => ({ e10: 0, mul });

/** Byte sizes: decimal SI (kB = 1000) and binary IEC (KiB = 1024). `KB` is read as decimal, like `kB`. */
const BYTE_UNITS: Readonly<Record<string, Scale>> = {
  B: dec(0),
  kB: dec(3),
  KB: dec(3),
  MB: dec(6),
  GB: dec(9),
  TB: dec(12),
  PB: dec(15),
  KiB: bin(2 ** 10),
  MiB: bin(2 ** 20),
  GiB: bin(2 ** 30),
  TiB: bin(2 ** 40),
  PiB: bin(2 ** 50),
};

/** SI prefixes for bit rates (`400Gb/s`) and FLOP/s (`989TFLOPS`). */
const SI_PREFIXES: Readonly<Record<string, number>> = { '': 0, k: 3, K: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/** Times. Both micro signs are accepted: U+00B5 (what keyboards type) and U+03BC (Greek mu). */
const TIME_UNITS: Readonly<Record<string, number>> = { '': 0, s: 0, ms: -3, us: -6, '\u00b5s': -6, '\u03bcs': -6, ns: -9, ps: -12 };

const BYTES_FORMS = 'a size such as 80GiB, 64GB or 512MiB (binary KiB MiB GiB TiB PiB, decimal kB MB GB TB PB, B, or a plain number of bytes)';
const BANDWIDTH_FORMS = 'a bandwidth such as 3.35TB/s, 64GB/s, 32GiB/s (bytes per second) or 400Gb/s, 100Mbit/s, 200Gbps (bits per second)';
const FLOPS_FORMS = 'a compute rate such as 989TFLOPS, 1.98PFLOPS, 60TFLOP/s or 200TOPS (prefixes k M G T P E)';
const SECONDS_FORMS = 'a time such as 2us, 2\u00b5s, 5ns, 1.5ms, 3s or a plain number of seconds';

function badUnit(what: string, value: unknown, forms: string, where?: string): HxcError {
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return new HxcError('HXC2303', `bad ${what} ${shown}: expected ${forms}`, {
    where,
    hint: `write ${what} with one of the accepted units`,
  });
}

/** Splits `80 GiB` into the number (as a function of the unit's scale) and 'GiB'; null when not number-then-unit. */
function splitQuantity(text: string): { value: (scale: Scale) => number; unit: string } | null {
  const m = QUANTITY.exec(text.trim());
  if (!m) return null;
  const mantissa = m[1] as string;
  const exponent = Number(m[2] ?? '0');
  return { value: (scale) => Number(`${mantissa}e${exponent + scale.e10}`) * scale.mul, unit: m[3] ?? '' };
}

/**
 * Plausible ranges, so that a typo cannot make every time infinite or zero downstream (1e-320
 * FLOP/s, a 1e308 s launch): sizes up to 1 EiB; bandwidths from 1 B/s (the HEFT literature's unit
 * links) to 10 PB/s; compute rates 0 (no such dtype) or from 1 FLOP/s to 1 ZFLOP/s; times up to an hour.
 */
const RANGES: Record<string, [number, number]> = {
  size: [0, 2 ** 60],
  bandwidth: [1, 1e16],
  'compute rate': [1, 1e21],
  time: [0, 3600],
};

/** A finite result within its quantity's range, or HXC2303 (huge exponents give Infinity). */
function checked(value: number, what: string, text: unknown, _forms: string, where?: string): number {
  const [lo, hi] = RANGES[what] ?? [0, Infinity];
  if (!Number.isFinite(value) || value < 0 || value > hi || (value !== 0 && value < lo) || (what === 'bandwidth' && value === 0)) {
    const shown = typeof text === 'string' ? JSON.stringify(text) : String(text);
    throw new HxcError('HXC2303', `${what} ${shown} is out of range (${what === 'compute rate' ? '0 or ' : ''}${lo}..${hi} in base units)`, {
      where,
      hint: `write a ${what} a real device has`,
    });
  }
  return value;
}

/** Bytes from `80GiB`, `64GB`, `512 MiB`, `1024B`, `4096` or a YAML number. Rounded to whole bytes. */
export function parseBytes(value: unknown, where?: string): number {
  if (typeof value === 'number') return Math.round(checked(value, 'size', value, BYTES_FORMS, where));
  if (typeof value !== 'string') throw badUnit('size', value, BYTES_FORMS, where);
  const q = splitQuantity(value);
  const scale = q ? (q.unit === '' ? dec(0) : BYTE_UNITS[q.unit]) : undefined;
  if (!q || !scale) throw badUnit('size', value, BYTES_FORMS, where);
  return Math.round(checked(q.value(scale), 'size', value, BYTES_FORMS, where));
}

/** Bytes per second from `3.35TB/s`, `64GB/s`, `32GiB/s`, `400Gb/s`, `400Gbit/s`, `200Gbps`. A unit is required. */
export function parseBandwidth(value: unknown, where?: string): number {
  if (typeof value !== 'string') throw badUnit('bandwidth', value, BANDWIDTH_FORMS, where);
  const q = splitQuantity(value);
  if (!q) throw badUnit('bandwidth', value, BANDWIDTH_FORMS, where);
  let scale: Scale | undefined;
  const perSecond = /^(.+)\/s$/.exec(q.unit);
  const bits = perSecond ? /^([kKMGTP]?)(b|bit)$/.exec(perSecond[1] as string) : /^([kKMGTP]?)bps$/.exec(q.unit);
  if (perSecond) scale = BYTE_UNITS[perSecond[1] as string];
  if (!scale && bits) scale = { e10: SI_PREFIXES[bits[1] as string] as number, mul: 1 / 8 };
  if (!scale) throw badUnit('bandwidth', value, BANDWIDTH_FORMS, where);
  return checked(q.value(scale), 'bandwidth', value, BANDWIDTH_FORMS, where);
}

/** FLOP/s from `989TFLOPS`, `60 TFLOP/s`, `1.98PFLOPS`, `200TOPS` (integer datasheets). A unit is required. */
export function parseFlops(value: unknown, where?: string): number {
  if (typeof value !== 'string') throw badUnit('compute rate', value, FLOPS_FORMS, where);
  const q = splitQuantity(value);
  const m = q ? /^([kKMGTPE]?)(FLOPS|FLOP\/s|FLOPs|flops|flop\/s|Flops|Flop\/s|OPS|OP\/s|ops)$/.exec(q.unit) : null;
  if (!q || !m) throw badUnit('compute rate', value, FLOPS_FORMS, where);
  return checked(q.value(dec(SI_PREFIXES[m[1] as string] as number)), 'compute rate', value, FLOPS_FORMS, where);
}

/** Seconds from `2us`, `2µs`, `5ns`, `1.5ms`, `3s` or a YAML number (seconds). */
export function parseSeconds(value: unknown, where?: string): number {
  if (typeof value === 'number') return checked(value, 'time', value, SECONDS_FORMS, where);
  if (typeof value !== 'string') throw badUnit('time', value, SECONDS_FORMS, where);
  const q = splitQuantity(value);
  const e10 = q ? TIME_UNITS[q.unit] : undefined;
  if (!q || e10 === undefined) throw badUnit('time', value, SECONDS_FORMS, where);
  return checked(q.value(dec(e10)), 'time', value, SECONDS_FORMS, where);
}

// ---- printing: a number with at most 4 significant digits, deterministic (no locale). ----

/** `989`, `494.5`, `3350`, `0.002`: toPrecision(4) then trimmed, never exponent notation for our ranges. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const r = Number(x.toPrecision(4));
  if (Math.abs(r) >= 1e-6 && Math.abs(r) < 1e21) {
    // Number#toString can still give 1e-7 style for tiny values; fixed notation is clearer here.
    const s = r.toString();
    return s.includes('e') ? r.toFixed(12).replace(/0+$/, '').replace(/\.$/, '') : s;
  }
  return r.toExponential(3);
}

/** `80 GiB`, `512 MiB`, `100 B`: binary units, as memory is sized. */
export function formatBytes(bytes: number): string {
  const units: [string, number][] = [
    ['PiB', 2 ** 50],
    ['TiB', 2 ** 40],
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ];
  for (const [name, scale] of units) if (bytes >= scale) return `${formatNumber(bytes / scale)} ${name}`;
  return `${formatNumber(bytes)} B`;
}

/** `3.35 TB/s`, `64 GB/s`: decimal bytes per second, as datasheets give bandwidth. */
export function formatBandwidth(bytesPerS: number): string {
  const units: [string, number][] = [
    ['TB/s', 1e12],
    ['GB/s', 1e9],
    ['MB/s', 1e6],
    ['kB/s', 1e3],
  ];
  for (const [name, scale] of units) if (bytesPerS >= scale) return `${formatNumber(bytesPerS / scale)} ${name}`;
  return `${formatNumber(bytesPerS)} B/s`;
}

/** `989 TFLOP/s`, `1.979 PFLOP/s`. */
export function formatFlops(flopsPerS: number): string {
  const units: [string, number][] = [
    ['EFLOP/s', 1e18],
    ['PFLOP/s', 1e15],
    ['TFLOP/s', 1e12],
    ['GFLOP/s', 1e9],
    ['MFLOP/s', 1e6],
  ];
  for (const [name, scale] of units) if (flopsPerS >= scale) return `${formatNumber(flopsPerS / scale)} ${name}`;
  return `${formatNumber(flopsPerS)} FLOP/s`;
}

/** `2 us`, `1.5 ms`, `3 s`, `5 ns`. */
export function formatSeconds(s: number): string {
  if (s === 0) return '0 s';
  if (s >= 1) return `${formatNumber(s)} s`;
  if (s >= 1e-3) return `${formatNumber(s * 1e3)} ms`;
  if (s >= 1e-6) return `${formatNumber(s * 1e6)} us`;
  return `${formatNumber(s * 1e9)} ns`;
}
