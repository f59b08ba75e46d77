// A binary min-heap ordered by a caller's `less`: the one priority queue behind the topological
// orders, route search and stage merging.

export class Heap<T> {
  private readonly items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(x: T): void {
    const d = this.items;
    d.push(x);
    let i = d.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(x, d[p]!)) break;
      d[i] = d[p]!;
      i = p;
    }
    d[i] = x;
  }

  /** The least element, left in place; undefined when empty. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** The least element, removed; undefined when empty. */
  pop(): T | undefined {
    const d = this.items;
    if (d.length === 0) return undefined;
    const top = d[0]!;
    const last = d.pop()!;
    const n = d.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && this.less(d[r]!, d[l]!) ? r : l;
        if (!this.less(d[c]!, last)) break;
        d[i] = d[c]!;
        i = c;
      }
      d[i] = last;
    }
    return top;
  }
}
