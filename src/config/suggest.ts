// "Did you mean …?" for misspelt config keys, flags and commands: the closest allowed word within a small edit distance.

/** Levenshtein distance, with the two-row table: keys are short, so this stays cheap. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate, if it is near enough to be a typo: distance at most 2, and less than half the word. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  // access-log and access_log are the same key to a typist: compare with one separator.
  const norm = (s: string) => s.toLowerCase().replaceAll("-", "_");
  const w = norm(word);
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, norm(c));
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return bestDist <= Math.min(2, Math.floor(word.length / 2)) ? best : undefined;
}
