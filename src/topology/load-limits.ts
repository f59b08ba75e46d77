// The topology reader's limits and the shapes of what it walks (shared by load.ts and its readers).

/** Aliases may be used (anchors for shared settings) but a billion-laughs expansion may not. */
export const MAX_ALIAS_COUNT = 64;
/** Largest topology file read; a rack description is kilobytes. */
export const MAX_FILE_BYTES = 16 * 2 ** 20;
/** Most ids one range or `count` may produce. */
export const MAX_EXPANSION = 4096;
export const ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export type Path = readonly (string | number)[];
export type Obj = Record<string, unknown>;

/** dtype names used in `flops:` and in Device.peak_flops. */
export const DTYPES = ['fp64', 'fp32', 'tf32', 'fp16', 'bf16', 'fp8', 'int8', 'fp4', 'int4'] as const;
