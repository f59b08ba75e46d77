// Strings → dense ids in the order first seen, for the ONNX import's hundreds of thousands of
// names (node names made unique, value names interned): an open-addressed table of typed arrays
// holding each string's hash beside its id, instead of a Map.
//
// Why: a Map probed with a freshly decoded string walks its bucket's chain and reads each
// candidate key's header for its hash, a cache miss or more each (the DeepSeek-V3 shape: 273k node
// names and 800k value names, ~0.8 s of a 3.5 s import). Here a probe reads one slot (hash and id
// side by side) and touches a stored string only when the full hashes agree, which for distinct
// names is almost never; growing rehashes from the stored hashes, not the strings.
//
// A model file is untrusted: names crafted to collide would make every probe long. A probe longer
// than MAX_PROBE moves the table to a Map (V8 seeds its string hashes per process), so the worst
// case stays a Map's. Ids do not depend on the hashes, so neither does any output.

/** Probes beyond which the names are taken to collide on purpose (random names: a handful at most at a load of 1/2). */
const MAX_PROBE = 64;

export class StringIds {
  /** Id → its string (the first string seen with that content). */
  readonly names: string[] = [];
  /** Slot k: [hash, id + 1] at 2k, 2k + 1; id + 1 = 0 marks an empty slot. */
  private slots: Int32Array;
  private mask: number;
  /** Set once names collided too often: every lookup goes here from then on. */
  private map: Map<string, number> | null = null;

  /** `expected`: about how many strings will come (the table starts at twice that, and grows). */
  constructor(expected = 0) {
    let size = 16;
    while (size < 2 * expected) size *= 2;
    this.slots = new Int32Array(2 * size);
    this.mask = size - 1;
  }

  get size(): number {
    return this.names.length;
  }

  /** The id of `name`, or undefined. */
  get(name: string): number | undefined {
    if (this.map) return this.map.get(name);
    const h = hashOf(name);
    const { slots, mask, names } = this;
    for (let k = h & mask, probes = 0; probes <= mask; k = (k + 1) & mask, probes++) {
      const id = slots[2 * k + 1]! - 1;
      if (id === -1) return undefined;
      if (slots[2 * k] === h && names[id] === name) return id;
    }
    return undefined;
  }

  /** The id of `name`, given the next one when first seen. */
  intern(name: string): number {
    if (this.map) return internInMap(this.map, this.names, name);
    const h = hashOf(name);
    const { slots, mask, names } = this;
    let k = h & mask;
    for (let probes = 0; ; k = (k + 1) & mask, probes++) {
      const id = slots[2 * k + 1]! - 1;
      if (id === -1) break;
      if (slots[2 * k] === h && names[id] === name) return id;
      if (probes >= MAX_PROBE) return this.toMap(name);
    }
    const id = names.length;
    names.push(name);
    slots[2 * k] = h;
    slots[2 * k + 1] = id + 1;
    if (2 * names.length > mask + 1) this.grow();
    return id;
  }

  private grow(): void {
    const old = this.slots;
    const size = 2 * (this.mask + 1);
    const slots = new Int32Array(2 * size);
    const mask = size - 1;
    for (let j = 0; j < old.length; j += 2) {
      if (old[j + 1] === 0) continue;
      let k = old[j]! & mask;
      while (slots[2 * k + 1] !== 0) k = (k + 1) & mask;
      slots[2 * k] = old[j]!;
      slots[2 * k + 1] = old[j + 1]!;
    }
    this.slots = slots;
    this.mask = mask;
  }

  /** The names so far into a Map, and `name` interned there. */
  private toMap(name: string): number {
    const map = new Map<string, number>();
    for (let id = 0; id < this.names.length; id++) map.set(this.names[id]!, id);
    this.map = map;
    this.slots = new Int32Array(0);
    return internInMap(map, this.names, name);
  }
}

/** `name`'s id in `map`, given the next one (its place in `names`) on first sight. */
export function internInMap(map: Map<string, number>, names: string[], name: string): number {
  let id = map.get(name);
  if (id === undefined) {
    id = names.length;
    map.set(name, id);
    names.push(name);
  }
  return id;
}

/** FNV-1a over the UTF-16 code units, then murmur3's finalizer so the low bits (the slot) mix all of them. */
export function hashOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
