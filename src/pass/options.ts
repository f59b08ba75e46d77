// Pass options, declared once: each option is a constant next to the pass that owns it (its name,
// kind, range, default and help). The pass lists it in `options`; src/cli builds the commander
// options of `plan` (and of `inspect`, `check` where the option says so) from the pass registry,
// parses and validates what the user typed through `parseOption`, and a pass reads the value
// typed with `ctx.option(SPEC)` — validated again there, since a test or the bench may hand a
// flags bag in directly. Adding a pass with an option is one file and one line in passes/index.ts.

import { HxcError } from '../diag/diagnostics.js';
import { parseBytes, parseSeconds } from '../topology/units.js';

export type OptionValue = string | number | boolean;

interface Base<T extends OptionValue> {
  /** `--name` on the command line and the key of PlanOptions.flags. */
  readonly name: string;
  /** The argument in help (`<n>`, `<file>`); none for a switch. */
  readonly arg?: string;
  /** A one-letter alias (`-o`). */
  readonly short?: string;
  readonly help: string;
  /** Besides `plan`, the commands that take it (the analysis options: inspect; planning a model: check). */
  readonly on?: readonly ('inspect' | 'check')[];
  /** Phantom: the value's type. */
  readonly _value?: T;
}

export type OptionSpec<T extends OptionValue = OptionValue> = Base<T> &
  (
    | { readonly kind: 'switch' }
    | { readonly kind: 'int'; readonly min: number; readonly max?: number; readonly example: number }
    | { readonly kind: 'seconds'; readonly max: number; readonly example: number }
    | { readonly kind: 'bytes' }
    | { readonly kind: 'choice'; readonly choices: readonly string[] }
    | { readonly kind: 'string' }
    | { readonly kind: 'file' }
  );

export const switchOption = (o: Omit<Base<boolean>, '_value'>): OptionSpec<boolean> => ({ ...o, kind: 'switch' });
export const intOption = (o: Omit<Base<number>, '_value'> & { min: number; max?: number; example: number }): OptionSpec<number> => ({ ...o, kind: 'int' });
export const secondsOption = (o: Omit<Base<number>, '_value'> & { max: number; example: number }): OptionSpec<number> => ({ ...o, kind: 'seconds' });
export const bytesOption = (o: Omit<Base<number>, '_value'>): OptionSpec<number> => ({ ...o, kind: 'bytes' });
export const choiceOption = <C extends string>(o: Omit<Base<C>, '_value'> & { choices: readonly C[] }): OptionSpec<C> => ({ ...o, kind: 'choice' });
export const stringOption = (o: Omit<Base<string>, '_value'>): OptionSpec<string> => ({ ...o, kind: 'string' });
export const fileOption = (o: Omit<Base<string>, '_value'>): OptionSpec<string> => ({ ...o, kind: 'file' });

const bad = (flag: string, what: string, got: unknown, hint?: string): HxcError =>
  new HxcError('HXC2002', `${flag} takes ${what}, got "${String(got)}"`, { where: flag, ...(hint ? { hint } : {}) });

/**
 * The value of `spec` given as `raw` (a command-line string, or a value a flags bag holds),
 * validated; exit 2 with one line naming the flag when it is not one.
 */
export function parseOption<T extends OptionValue>(spec: OptionSpec<T>, raw: OptionValue): T {
  const flag = `--${spec.name}`;
  switch (spec.kind) {
    case 'switch':
      if (typeof raw !== 'boolean') throw bad(flag, 'no value', raw);
      return raw as T;
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
      if (!Number.isInteger(n) || n < spec.min || (spec.max !== undefined && n > spec.max)) {
        const what =
          spec.min === 1 && spec.max === undefined
            ? 'a positive integer'
            : spec.min === 0 && spec.max === undefined
              ? 'a non-negative integer'
              : `an integer from ${spec.min} to ${spec.max ?? '∞'}`;
        throw bad(flag, what, raw, `e.g. ${flag} ${spec.example}`);
      }
      return n as T;
    }
    case 'seconds': {
      // A number of seconds, or a time in the rack's units (500ms, 5s).
      const t = typeof raw === 'number' ? raw : raw !== '' && !Number.isNaN(Number(raw)) ? Number(raw) : parseSeconds(String(raw), flag);
      if (!(t > 0 && t <= spec.max)) throw bad(flag, `a time above 0 s and at most ${spec.max} s`, raw, `e.g. ${flag} ${spec.example} or ${flag} 500ms`);
      return t as T;
    }
    case 'bytes':
      return (typeof raw === 'number' ? raw : parseBytes(String(raw), flag)) as T;
    case 'choice':
      if (typeof raw !== 'string' || !spec.choices.includes(raw)) throw bad(flag, `one of ${spec.choices.join(', ')}`, raw);
      return raw as T;
    case 'string':
      // A flags bag may hold a number for a string option (`'tensor-parallel': 2`): its text.
      if ((typeof raw !== 'string' && typeof raw !== 'number') || raw === '') throw bad(flag, 'a value', raw);
      return String(raw) as T;
    case 'file':
      if (typeof raw !== 'string' || raw === '') throw bad(flag, 'a file', raw);
      return raw as T;
  }
}

/** The option's value in a flags bag, validated (undefined when absent). */
export function readOption<T extends OptionValue>(flags: Readonly<Record<string, OptionValue>>, spec: OptionSpec<T>): T | undefined {
  const raw = flags[spec.name];
  return raw === undefined ? undefined : parseOption(spec, raw);
}
