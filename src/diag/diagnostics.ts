// Diagnostics: every user-visible error or warning has a code from this one catalog, and reaches
// the user as one line (what, where, how to fix). An HxcError is thrown by any layer; the CLI
// catches it, prints `format(err)` and exits with its exit code. A stack trace is a bug.

/** The catalog. 1xxx warnings, 2xxx bad input or usage (exit 2), 3xxx budget/check failures (exit 1). */
export const CATALOG = {
  HXC1101: 'weights absent',
  HXC1102: 'operators without shape inference',
  HXC1103: 'value_info disagrees',
  HXC1104: 'unbound dims defaulted',
  HXC1105: 'calibration incomplete',
  HXC1106: 'uniform routing assumed',
  HXC1107: 'KV capacity below what was asked',
  HXC2000: 'not built',
  HXC2001: 'cannot read file',
  HXC2002: 'usage',
  HXC2003: 'unknown format',
  HXC2004: 'output path not hxc\'s to replace',
  HXC2005: 'cannot write output',
  HXC2101: 'empty model file',
  HXC2102: 'not an ONNX model',
  HXC2103: 'truncated ONNX model',
  HXC2104: 'external data outside the model folder',
  HXC2105: 'external data out of range',
  HXC2106: 'size limit exceeded',
  HXC2107: 'malformed ONNX graph',
  HXC2201: 'invalid JSON',
  HXC2202: 'invalid JSON graph',
  HXC2203: 'undefined value',
  HXC2204: 'graph has a cycle',
  HXC2205: 'duplicate name',
  HXC2206: 'invalid dims binding',
  HXC2301: 'invalid YAML',
  HXC2302: 'invalid topology',
  HXC2303: 'bad unit',
  HXC2304: 'unknown device',
  HXC2305: 'unknown catalog model',
  HXC2306: 'duplicate device id',
  HXC2307: 'unreachable device',
  HXC2401: 'unknown pass',
  HXC2402: 'missing prerequisite pass',
  HXC2403: 'invalid pass option',
  HXC2501: 'invalid routing trace',
  HXC2502: 'invalid calibration file',
  HXC2503: 'invalid assignment',
  HXC2601: 'tampered plan',
  HXC2602: 'invalid run inputs',
  HXC3001: 'model does not fit',
  HXC3003: 'numeric check failed',
  HXC3002: 'budget exceeded',
} as const;

export type DiagCode = keyof typeof CATALOG;

export interface DiagInfo {
  /** Where: a file path, optionally with `:line`, a JSON path, a node name. */
  where?: string;
  /** How to fix it, one short clause. */
  hint?: string;
}

export class HxcError extends Error {
  readonly code: DiagCode;
  readonly where: string | undefined;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: DiagCode, message: string, info: DiagInfo = {}) {
    super(message);
    this.name = 'HxcError';
    this.code = code;
    this.where = info.where;
    this.hint = info.hint;
    this.exitCode = code.startsWith('HXC3') ? 1 : 2;
  }
}

/** One line: `error HXC2304: rack.yaml:14: link "nvlink0" names unknown device "gpu9" (fix: ...)`. */
export function formatDiagnostic(severity: 'error' | 'warning', code: DiagCode, message: string, info: DiagInfo = {}): string {
  const where = info.where ? `${info.where}: ` : '';
  const hint = info.hint ? ` (fix: ${info.hint})` : '';
  return `hxc: ${severity} ${code}: ${where}${oneLine(message)}${oneLine(hint)}`;
}

export function formatError(err: HxcError): string {
  return formatDiagnostic('error', err.code, err.message, { where: err.where, hint: err.hint });
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}

/** Collects warnings so that commands print them once each, in order, and tests can read them. */
export class Diagnostics {
  readonly warnings: { code: DiagCode; message: string; info: DiagInfo }[] = [];

  warn(code: DiagCode, message: string, info: DiagInfo = {}): void {
    this.warnings.push({ code, message, info });
  }

  lines(): string[] {
    return this.warnings.map((w) => formatDiagnostic('warning', w.code, w.message, w.info));
  }
}
