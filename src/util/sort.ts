// Sorting indices by keys held in typed arrays. TypedArray.prototype.sort and Array.prototype.sort
// with a comparator box every index and call the comparator through a builtin: on the schedules of
// a 275k-node plan (134k steps, sorted for every judgement) that was a tenth of the partition pass.

/**
 * `order`, a list of indices, sorted stably by `primary[i]` and then `secondary[i]` ascending (a
 * merge sort over insertion-sorted runs of 16): the order a stable comparator sort on
 * `primary[a] - primary[b] || secondary[a] - secondary[b]` gives, for keys that are not NaN. Sorts
 * in place and returns `order`, or returns a scratch array holding the result (`scratch`'s first n
 * elements when it is given and holds n).
 *
 * Keys are Float64Arrays only (every caller's are, or are copied into one): the function is then
 * compiled for one kind of element load, and its merge keeps the two heads' primary keys in locals
 * (a memoryOf of the DeepSeek-V3 shape, 309k events: its sort 16 → 12 ms).
 */
export function sortIndices(order: Int32Array, primary: Float64Array, secondary?: Float64Array, scratch?: Int32Array): Int32Array {
  // One key: the primary again as the second (equal firsts are equal seconds: no reorder).
  const second = secondary ?? primary;
  const n = order.length;
  const RUN = 16;
  let src: Int32Array = order;
  for (let lo = 0; lo < n; lo += RUN) {
    const hi = Math.min(n, lo + RUN);
    for (let i = lo + 1; i < hi; i++) {
      const x = src[i]!;
      const px = primary[x]!;
      const sx = second[x]!;
      let j = i - 1;
      for (; j >= lo; j--) {
        const y = src[j]!;
        const py = primary[y]!;
        // (x before y: strictly, so equal keys keep their order.)
        if (!(px < py || (px === py && sx < second[y]!))) break;
        src[j + 1] = y;
      }
      src[j + 1] = x;
    }
  }
  if (n <= RUN) return src;
  // (A caller sorting again and again lends the merge its second array: `scratch`, when it holds n.)
  let dst: Int32Array = scratch && scratch.length >= n ? scratch.subarray(0, n) : new Int32Array(n);
  for (let width = RUN; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(n, lo + width);
      const hi = Math.min(n, lo + 2 * width);
      let k = lo;
      // One run, or two already in order (a schedule's events mostly are): copied, not merged.
      if (mid >= hi) {
        for (; k < hi; k++) dst[k] = src[k]!;
        continue;
      }
      let i = lo;
      let j = mid;
      let a = src[i]!;
      let b = src[j]!;
      let pa = primary[a]!;
      let pb = primary[b]!;
      const last = src[mid - 1]!;
      if (!(pb < primary[last]! || (pb === primary[last]! && second[b]! < second[last]!))) {
        for (; k < hi; k++) dst[k] = src[k]!;
        continue;
      }
      for (;;) {
        if (pb < pa || (pb === pa && second[b]! < second[a]!)) {
          dst[k++] = b;
          if (++j >= hi) break;
          b = src[j]!;
          pb = primary[b]!;
        } else {
          dst[k++] = a;
          if (++i >= mid) break;
          a = src[i]!;
          pa = primary[a]!;
        }
      }
      while (i < mid) dst[k++] = src[i++]!;
      while (j < hi) dst[k++] = src[j++]!;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  return src;
}

/**
 * Indices 0 … keys.length − 1 grouped by key (a counting sort, stable): bucket b's indices are
 * `items[start[b] .. start[b + 1])`, ascending. Keys are in [0, buckets); an index whose key is
 * negative is in no bucket. (The partitioner's members per group, transfers per value and units per
 * launch group are such lists, over hundreds of thousands of indices: no array per bucket.)
 */
export function bucketIndices(keys: ArrayLike<number>, buckets: number): { start: Int32Array; items: Int32Array } {
  const n = keys.length;
  const start = new Int32Array(buckets + 1);
  for (let i = 0; i < n; i++) if (keys[i]! >= 0) start[keys[i]! + 1]!++;
  for (let b = 0; b < buckets; b++) start[b + 1]! += start[b]!;
  const items = new Int32Array(start[buckets]!);
  const fill = start.slice(0, buckets);
  for (let i = 0; i < n; i++) if (keys[i]! >= 0) items[fill[keys[i]!]!++] = i;
  return { start, items };
}
