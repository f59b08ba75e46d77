// Numbers for people, written once: a duration with its unit (the CLI's tables and replan's
// reasons), and a number in a pass dump (plain with at most `digits` decimals, exponential when
// very large or very small, so dumps stay short and diffable).

/** 1.234 s, 12.345 ms, 123.4 us. */
export function formatSeconds(s: number): string {
  return s >= 1 ? `${s.toFixed(3)} s` : s >= 1e-3 ? `${(s * 1e3).toFixed(3)} ms` : `${(s * 1e6).toFixed(1)} us`;
}

/** A number in a pass dump: 0, 12.3457, 1.2346e+5, 1.2346e-3 (magnitudes outside [1e-2, 1e4) go exponential). */
export function dumpNumber(x: number, digits = 4): string {
  return x === 0 ? '0' : Math.abs(x) >= 1e4 || Math.abs(x) < 1e-2 ? x.toExponential(digits) : String(Number(x.toFixed(digits)));
}
