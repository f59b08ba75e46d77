// Canonical integer polynomials over symbols: the algebra behind symbolic dims. Terms are kept in
// graded-lex order with like terms merged, so the printed text is canonical and parses back
// (poly-parse.ts; the two modules refer to each other only inside functions). Division that is
// not exact makes an atom `floor(P/k)`, itself a symbol. Atoms stand for dims and counts, so
// every atom is assumed ≥ 0 (used by `sign`).

import type { Dim } from '../ir/graph.js';

/**
 * The parser (poly-parse.ts) builds Polys, and printing an atom asks whether its text parses back
 * to it: the two recurse into each other. The parser registers itself when its module loads
 * (src/shapes/symbolic.ts, the only way in, imports both), so neither module imports the other's
 * values and the import graph stays acyclic.
 */
export interface PolyParser {
  parseStrict(text: string): Poly | undefined;
  parseLenient(text: string): Poly;
  cacheParsed(text: string, p: Poly): void;
}
let parser: PolyParser | null = null;
export function registerParser(p: PolyParser): void {
  parser = p;
}
function parsing(): PolyParser {
  if (!parser) throw new Error('src/shapes/poly-parse.ts is not loaded: import polynomials through src/shapes/symbolic.ts');
  return parser;
}

/** A monomial: symbol powers, sorted by symbol name. */
type Mono = readonly (readonly [string, number])[];

interface Term {
  readonly coef: number;
  readonly mono: Mono;
  /** Printed monomial without coefficient ('' for the constant term): the canonical sort key. */
  readonly key: string;
  readonly degree: number;
}

export type Bindings = ReadonlyMap<string, number> | Readonly<Record<string, number>>;

export const IDENT = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const CACHE_LIMIT = 200_000;

/** Memo: floor atom name → its numerator and divisor (rebuilt from the name by parsing when missing). */
const floorParts = new Map<string, { num: Poly; den: Poly }>();
/** Memo: atom name → how it prints inside a larger expression. */
const atomText = new Map<string, string>();

export function remember<K, V>(map: Map<K, V>, key: K, value: V): V {
  if (map.size >= CACHE_LIMIT) map.clear();
  map.set(key, value);
  return value;
}

/**
 * Graded lexicographic order (a monomial order, so division by leading terms is exact division):
 * higher degree first; then, over symbols in name order, the larger exponent of the first symbol
 * where the two differ. The constant term comes last.
 */
function compareTerms(a: Term, b: Term): number {
  if (a.degree !== b.degree) return b.degree - a.degree;
  const x = a.mono;
  const y = b.mono;
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    const [sx, px] = x[i]!;
    const [sy, py] = y[j]!;
    if (sx === sy) {
      if (px !== py) return py - px;
      i++;
      j++;
    } else return sx < sy ? -1 : 1; // a has a symbol b lacks (exponent 0 in b)
  }
  return i < x.length ? -1 : j < y.length ? 1 : 0;
}

function makeTerm(coef: number, mono: Mono): Term {
  let degree = 0;
  const parts: string[] = [];
  for (const [sym, pow] of mono) {
    degree += pow;
    const s = printAtom(sym);
    parts.push(pow === 1 ? s : `${s}^${pow}`);
  }
  return { coef, mono, key: parts.join('*'), degree };
}

function mulMono(a: Mono, b: Mono): Mono {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out: [string, number][] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (x && (!y || x[0] < y[0])) {
      out.push([x[0], x[1]]);
      i++;
    } else if (y && (!x || y[0] < x[0])) {
      out.push([y[0], y[1]]);
      j++;
    } else {
      out.push([x![0], x![1] + y![1]]);
      i++;
      j++;
    }
  }
  return out;
}

/** a / b for monomials when b divides a, else undefined. */
function divMono(a: Mono, b: Mono): Mono | undefined {
  const out: [string, number][] = [];
  let j = 0;
  for (const [sym, pow] of a) {
    const y = b[j];
    if (y && y[0] < sym) return undefined;
    if (y && y[0] === sym) {
      if (y[1] > pow) return undefined;
      if (y[1] < pow) out.push([sym, pow - y[1]]);
      j++;
    } else out.push([sym, pow]);
  }
  return j === b.length ? out : undefined;
}

function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a;
}

function formatInt(n: number): string {
  return Number.isSafeInteger(n) || !Number.isFinite(n) ? String(n) : BigInt(Math.round(n)).toString();
}

export class Poly {
  private text: string | undefined;

  private constructor(readonly terms: readonly Term[]) {}

  /** Builds a canonical polynomial: like terms merged, zero terms dropped, terms sorted. */
  static fromTerms(terms: Iterable<{ coef: number; mono: Mono }>): Poly {
    const byKey = new Map<string, Term>();
    for (const t of terms) {
      if (t.coef === 0) continue;
      const term = makeTerm(t.coef, t.mono);
      const prev = byKey.get(term.key);
      byKey.set(term.key, prev ? { ...prev, coef: prev.coef + term.coef } : term);
    }
    const list = [...byKey.values()].filter((t) => t.coef !== 0).sort(compareTerms);
    return new Poly(list);
  }

  static constant(n: number): Poly {
    return n === 0 ? ZERO : new Poly([makeTerm(n, [])]);
  }

  /** One symbol; backticks (the quote of unreadable names) become apostrophes. */
  static symbol(name: string): Poly {
    return atomPoly(name.replace(/`/g, "'"));
  }

  /** @internal the atom exactly as named (floor atoms may quote inner names in backticks). */
  static atom(name: string): Poly {
    return new Poly([makeTerm(1, [[name, 1]])]);
  }

  isConstant(): boolean {
    return this.terms.length === 0 || (this.terms.length === 1 && this.terms[0]!.degree === 0);
  }

  /** The value when constant, else undefined. */
  constantValue(): number | undefined {
    if (this.terms.length === 0) return 0;
    return this.isConstant() ? this.terms[0]!.coef : undefined;
  }

  /** The constant term (0 when there is none). */
  constantTerm(): number {
    const last = this.terms[this.terms.length - 1];
    return last && last.degree === 0 ? last.coef : 0;
  }

  add(o: Poly): Poly {
    if (o.terms.length === 0) return this;
    if (this.terms.length === 0) return o;
    return Poly.fromTerms([...this.terms, ...o.terms]);
  }

  neg(): Poly {
    return this.scale(-1);
  }

  sub(o: Poly): Poly {
    return this.add(o.neg());
  }

  scale(k: number): Poly {
    if (k === 1) return this;
    if (k === 0) return ZERO;
    return new Poly(this.terms.map((t) => ({ ...t, coef: t.coef * k })));
  }

  mul(o: Poly): Poly {
    const a = this.constantValue();
    if (a !== undefined) return o.scale(a);
    const b = o.constantValue();
    if (b !== undefined) return this.scale(b);
    const out: { coef: number; mono: Mono }[] = [];
    for (const x of this.terms) for (const y of o.terms) out.push({ coef: x.coef * y.coef, mono: mulMono(x.mono, y.mono) });
    return Poly.fromTerms(out);
  }

  /**
   * this / d when d divides this exactly with integer coefficients (multivariate division by
   * leading terms under the graded order; exact division never leaves a remainder), else undefined.
   */
  divExact(d: Poly): Poly | undefined {
    if (d.terms.length === 0) return undefined;
    const k = d.constantValue();
    if (k !== undefined) {
      if (this.terms.some((t) => t.coef % k !== 0)) return undefined;
      return new Poly(this.terms.map((t) => ({ ...t, coef: t.coef / k })));
    }
    const lead = d.terms[0]!;
    let rest: Poly = this;
    const quotient: { coef: number; mono: Mono }[] = [];
    for (let guard = 0; rest.terms.length > 0; guard++) {
      if (guard > 10_000) return undefined;
      const t = rest.terms[0]!;
      const mono = divMono(t.mono, lead.mono);
      if (!mono || t.coef % lead.coef !== 0) return undefined;
      const q = Poly.fromTerms([{ coef: t.coef / lead.coef, mono }]);
      quotient.push(q.terms[0]!);
      rest = rest.sub(q.mul(d));
    }
    return Poly.fromTerms(quotient);
  }

  /** floor(this / d), exact when possible; otherwise a `floor(P/k)` atom (symbols are integers). */
  floorDiv(d: Poly): Poly {
    const exact = this.divExact(d);
    if (exact) return exact;
    let k = d.constantValue();
    if (k === undefined) return atomFloor(this, d);
    if (k === 0) return Poly.symbol(`floor(${wrap(this)}/0)`);
    let num: Poly = this;
    if (k < 0) {
      num = num.neg();
      k = -k;
    }
    // floor((k*q + r)/k) = q + floor(r/k) for integer q: move every multiple of k out of the atom.
    const outside: { coef: number; mono: Mono }[] = [];
    const inside: { coef: number; mono: Mono }[] = [];
    for (const t of num.terms) {
      if (t.degree === 0) {
        const c = ((t.coef % k) + k) % k;
        outside.push({ coef: (t.coef - c) / k, mono: [] });
        if (c !== 0) inside.push({ coef: c, mono: [] });
      } else if (t.coef % k === 0) outside.push({ coef: t.coef / k, mono: t.mono });
      else inside.push({ coef: t.coef, mono: t.mono });
    }
    const q = Poly.fromTerms(outside);
    let r = Poly.fromTerms(inside);
    if (r.isConstant()) return q; // 0 ≤ r < k
    let g = k;
    for (const t of r.terms) g = gcd(g, t.coef);
    if (g > 1) {
      r = new Poly(r.terms.map((t) => ({ ...t, coef: t.coef / g })));
      k /= g;
    }
    // floor((floor(X/m) + c)/k) = floor((X + m*c)/(m*k)) for positive integers m, k.
    const nested = r.terms[0]!;
    if (nested.coef === 1 && nested.degree === 1 && (r.terms.length === 1 || (r.terms.length === 2 && r.terms[1]!.degree === 0))) {
      const parts = floorPartsOf(nested.mono[0]![0]);
      const m = parts?.den.constantValue();
      if (parts && m !== undefined && m > 0) {
        return q.add(parts.num.add(Poly.constant(m * r.constantTerm())).floorDiv(Poly.constant(m * k)));
      }
    }
    return q.add(atomFloor(r, Poly.constant(k)));
  }

  equals(o: Poly): boolean {
    return this === o || this.toString() === o.toString();
  }

  /** Replaces bound symbols by their values (also inside floor atoms, which are then recomputed). */
  substitute(b: Bindings): Poly {
    const get = bindingGetter(b);
    if (!get) return this;
    let changed = false;
    let acc: Poly = ZERO;
    for (const t of this.terms) {
      let term = Poly.fromTerms([{ coef: t.coef, mono: [] }]);
      for (const [sym, pow] of t.mono) {
        let base: Poly;
        const v = get(sym);
        if (v !== undefined) {
          base = Poly.constant(v);
          changed = true;
        } else {
          const parts = floorPartsOf(sym);
          if (parts) {
            const num = parts.num.substitute(b);
            const den = parts.den.substitute(b);
            if (num !== parts.num || den !== parts.den) changed = true;
            base = num.floorDiv(den);
          } else base = Poly.atom(sym);
        }
        for (let p = 0; p < pow; p++) term = term.mul(base);
      }
      acc = acc.add(term);
    }
    return changed ? acc : this;
  }

  /** Atoms as they appear in monomials (a floor atom counts as one), sorted. */
  atoms(): string[] {
    const set = new Set<string>();
    for (const t of this.terms) for (const [s] of t.mono) set.add(s);
    return [...set].sort();
  }

  /** Base symbols a user can bind: atoms, with floor atoms opened up. */
  freeSymbols(): string[] {
    const set = new Set<string>();
    const visit = (p: Poly): void => {
      for (const t of p.terms) {
        for (const [s] of t.mono) {
          const parts = floorPartsOf(s);
          if (parts) {
            visit(parts.num);
            visit(parts.den);
          } else set.add(s);
        }
      }
    };
    visit(this);
    return [...set].sort();
  }

  /** Sign assuming every atom is ≥ 0: coefficients all of one sign decide it. */
  sign(): 'zero' | 'pos' | 'nonneg' | 'neg' | 'nonpos' | 'unknown' {
    if (this.terms.length === 0) return 'zero';
    const allPos = this.terms.every((t) => t.coef > 0);
    const allNeg = this.terms.every((t) => t.coef < 0);
    const c = this.constantTerm();
    if (allPos) return c > 0 ? 'pos' : 'nonneg';
    if (allNeg) return c < 0 ? 'neg' : 'nonpos';
    return 'unknown';
  }

  toDim(): Dim {
    const c = this.constantValue();
    return c !== undefined ? c : this.toString();
  }

  toString(): string {
    if (this.text !== undefined) return this.text;
    let s: string;
    if (this.terms.length === 0) s = '0';
    else if (this.terms.length === 1 && this.terms[0]!.coef === 1 && this.terms[0]!.degree === 1 && this.terms[0]!.mono.length === 1) {
      s = printStandaloneAtom(this.terms[0]!.mono[0]![0]);
    } else {
      s = '';
      this.terms.forEach((t, i) => {
        const abs = Math.abs(t.coef);
        const body = t.degree === 0 ? formatInt(abs) : abs === 1 ? t.key : `${formatInt(abs)}*${t.key}`;
        if (i === 0) s = t.coef < 0 ? `-${body}` : body;
        else s += t.coef < 0 ? ` - ${body}` : ` + ${body}`;
      });
    }
    this.text = s;
    parsing().cacheParsed(s, this);
    return s;
  }
}

const ZERO: Poly = Poly.fromTerms([]);

function atomPoly(name: string): Poly {
  return Poly.atom(name);
}

function bindingGetter(b: Bindings): ((s: string) => number | undefined) | null {
  if (b instanceof Map) return b.size === 0 ? null : (s) => b.get(s);
  const rec = b as Readonly<Record<string, number>>;
  // Not tested for emptiness: that lists the keys (V8 collects them even for for-in), and a graph
  // may bind tens of thousands of symbols while this runs once per substitution.
  return (s) => (Object.hasOwn(rec, s) ? rec[s] : undefined);
}

/** One atom or a number prints bare (atoms in their in-expression form); anything else in parentheses. */
function wrap(p: Poly): string {
  const t = p.terms[0];
  if (p.terms.length === 0) return '0';
  if (p.terms.length === 1 && t!.degree === 0 && t!.coef >= 0) return formatInt(t!.coef);
  if (p.terms.length === 1 && t!.coef === 1 && t!.degree === 1) return t!.key;
  return `(${p.toString()})`;
}

function atomFloor(num: Poly, den: Poly): Poly {
  const name = `floor(${wrap(num)}/${wrap(den)})`;
  if (!floorParts.has(name)) remember(floorParts, name, { num, den });
  return atomPoly(name);
}

export function floorPartsOf(name: string): { num: Poly; den: Poly } | undefined {
  if (!name.startsWith('floor(')) return undefined;
  const known = floorParts.get(name);
  if (known) return known;
  parsing().parseStrict(name); // a name we made parses back into the same atom, recording its parts
  return floorParts.get(name);
}

/** How an atom prints inside a larger expression: bare when it parses back to itself, else in backticks. */
function printAtom(name: string): string {
  const known = atomText.get(name);
  if (known !== undefined) return known;
  if (IDENT.test(name) || floorParts.has(name)) return remember(atomText, name, name);
  // Provisionally bare while checking, so parsing a floor name that builds this atom terminates.
  remember(atomText, name, name);
  const p = name.startsWith('floor(') ? parsing().parseStrict(name) : undefined;
  return remember(atomText, name, p && isSingleAtom(p, name) ? name : `\`${name}\``);
}

/** A whole dim that is one atom may print bare when the lenient parser gives the atom back. */
function printStandaloneAtom(name: string): string {
  if (IDENT.test(name)) return name;
  return isSingleAtom(parsing().parseLenient(name), name) ? name : `\`${name}\``;
}

function isSingleAtom(p: Poly, name: string): boolean {
  const t = p.terms[0];
  return p.terms.length === 1 && t!.coef === 1 && t!.mono.length === 1 && t!.mono[0]![0] === name && t!.mono[0]![1] === 1;
}
