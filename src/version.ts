// hxc's version, read once from package.json (the one place it is written).

import { createRequire } from 'node:module';

/** From dist/src/version.js, package.json is two folders up. */
export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
