// Parsing dim strings as exporters write them (`a + b`, `2*a`, `a - 1`, `(a+b)*c`, `a/2`,
// `floor((a + 1)/2)`, `` `odd name` ``): `/` and `//` floor, `floor(E)` is E (already an integer).
// Text that is not such an expression becomes one opaque atom named by the text itself.

import { Poly, registerParser, remember } from './poly.js';

/** A name with dashes or colons and no spaces (`seq-len`, `unk:3`) is one symbol, not a subtraction. */
const HYPHEN_NAME = /^[A-Za-z_][A-Za-z0-9_.]*[-:][A-Za-z0-9_.\-:]*$/;

/** Memo: text → polynomial (pure; printing registers each canonical text it makes). */
const parseCache = new Map<string, Poly>();

export function cacheParsed(text: string, p: Poly): void {
  remember(parseCache, text, p);
}

/** Parses a dim string; text that is not an expression becomes one opaque atom named by it. */
export function parseDim(text: string): Poly {
  const cached = parseCache.get(text);
  if (cached) return cached;
  return remember(parseCache, text, parseLenient(text));
}

/** parseDim without the memo (tests use it to check that printing round-trips for real). */
export function parseLenient(text: string): Poly {
  if (HYPHEN_NAME.test(text)) return Poly.symbol(text);
  return parseStrict(text) ?? Poly.symbol(text.trim() === '' ? '?' : text);
}

class Parser {
  private pos = 0;
  constructor(private readonly s: string) {}

  parse(): Poly | undefined {
    const p = this.expr();
    this.ws();
    return p && this.pos === this.s.length ? p : undefined;
  }

  private ws(): void {
    while (this.pos < this.s.length && /\s/.test(this.s[this.pos]!)) this.pos++;
  }

  private eat(tok: string): boolean {
    this.ws();
    if (this.s.startsWith(tok, this.pos)) {
      this.pos += tok.length;
      return true;
    }
    return false;
  }

  private expr(): Poly | undefined {
    let acc = this.term();
    while (acc) {
      if (this.eat('+')) {
        const r = this.term();
        acc = r && acc.add(r);
      } else if (this.eat('-')) {
        const r = this.term();
        acc = r && acc.sub(r);
      } else break;
    }
    return acc;
  }

  private term(): Poly | undefined {
    let acc = this.unary();
    while (acc) {
      this.ws();
      if (this.s.startsWith('**', this.pos)) break;
      if (this.eat('*')) {
        const r = this.unary();
        acc = r && acc.mul(r);
      } else if (this.eat('//') || this.eat('/')) {
        const r = this.unary();
        acc = r && acc.floorDiv(r);
      } else break;
    }
    return acc;
  }

  private unary(): Poly | undefined {
    if (this.eat('-')) return this.unary()?.neg();
    if (this.eat('+')) return this.unary();
    const base = this.primary();
    if (!base) return undefined;
    if (this.eat('^') || this.eat('**')) {
      this.ws();
      const m = /^\d+/.exec(this.s.slice(this.pos));
      if (!m) return undefined;
      this.pos += m[0].length;
      const n = Number(m[0]);
      if (n > 64) return undefined;
      let acc = Poly.constant(1);
      for (let i = 0; i < n; i++) acc = acc.mul(base);
      return acc;
    }
    return base;
  }

  private primary(): Poly | undefined {
    this.ws();
    const rest = this.s.slice(this.pos);
    const num = /^\d+/.exec(rest);
    if (num) {
      this.pos += num[0].length;
      if (/^[A-Za-z_.]/.test(this.s.slice(this.pos))) return undefined;
      const v = Number(num[0]);
      return Number.isSafeInteger(v) ? Poly.constant(v) : undefined;
    }
    if (this.eat('(')) {
      const inner = this.expr();
      return inner && this.eat(')') ? inner : undefined;
    }
    if (rest.startsWith('`')) {
      const end = this.s.indexOf('`', this.pos + 1);
      if (end < 0) return undefined;
      const name = this.s.slice(this.pos + 1, end);
      this.pos = end + 1;
      return Poly.symbol(name);
    }
    const id = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(rest);
    if (!id) return undefined;
    this.pos += id[0].length;
    this.ws();
    if (this.s[this.pos] === '(') {
      // `floor(E)`: every division already floors and polynomials are integers, so floor is identity.
      if (id[0] !== 'floor') return undefined;
      this.pos++;
      const inner = this.expr();
      return inner && this.eat(')') ? inner : undefined;
    }
    return Poly.symbol(id[0]);
  }
}

export function parseStrict(text: string): Poly | undefined {
  try {
    return new Parser(text).parse();
  } catch {
    return undefined;
  }
}

registerParser({ parseStrict, parseLenient, cacheParsed });
