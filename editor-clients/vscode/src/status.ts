/**
 * What the status bar shows: the latest classification of each document, and
 * how it reads as text and tooltip. Pure, so it is tested without an editor.
 */

import type { Classification } from './protocol';

/** Latest classification per document URI; a result for an older version never replaces a newer one. */
export class ClassificationStore {
  private readonly byUri = new Map<string, Classification>();

  /** Records `c`; returns false if it is older than what is already known for its document. */
  update(c: Classification): boolean {
    const known = this.byUri.get(c.uri);
    if (known && known.version !== null && c.version !== null && c.version < known.version) {
      return false;
    }
    this.byUri.set(c.uri, c);
    return true;
  }

  get(uri: string): Classification | undefined {
    return this.byUri.get(uri);
  }

  forget(uri: string): void {
    this.byUri.delete(uri);
  }

  clear(): void {
    this.byUri.clear();
  }
}

export function percent(p: number, digits = 0): string {
  return `${(p * 100).toFixed(digits)}%`;
}

/** Probability of the winning label (the label's own entry; 0 if the server left it out). */
export function labelProbability(c: Classification): number {
  return c.label === null ? 0 : (c.probabilities[c.label] ?? 0);
}

/** Status bar text, e.g. "$(symbol-keyword) sport 87%" ("no label" for a model without a document head). */
export function statusText(c: Classification): string {
  return c.label === null ? '$(symbol-keyword) no label' : `$(symbol-keyword) ${c.label} ${percent(labelProbability(c))}`;
}

/** Status bar tooltip: all probabilities, then what the update cost. */
export function statusTooltip(c: Classification): string {
  const ranked = Object.entries(c.probabilities).sort((a, b) => b[1] - a[1]);
  const heading = c.label === null ? 'vqlsp: this model has no document label' : `vqlsp: ${c.label} (${percent(labelProbability(c), 1)})`;
  const lines = [heading, ''];
  for (const [label, p] of ranked) {
    lines.push(`${label}: ${percent(p, 1)}`);
  }
  lines.push(
    '',
    `reused ${percent(c.reused_fraction)} of the work · ${c.ms.toFixed(1)} ms · ${c.tokens} tokens`,
    `version ${c.version ?? '?'}`,
  );
  return lines.join('\n');
}

/** Multi-line report for "vqlsp: Show Compute Stats", from `vqlsp.documentStats`. */
export function statsReport(stats: Record<string, unknown>): string {
  const sentence = cursorCompute(stats);
  const lines: string[] = sentence ? [sentence] : [];
  for (const [key, value] of Object.entries(stats)) {
    lines.push(`${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
  return lines.join('\n');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The compute of the sentence under the cursor against the document's mean, from
 * `computeAtCursor` and `compute` of `vqlsp.documentStats` (asked with the cursor), e.g.
 * "this sentence: 4.00 layers recomputed per token (document mean 0.50)". Undefined when
 * the cursor is on no sentence or the server sent no compute.
 */
export function cursorCompute(stats: Record<string, unknown>): string | undefined {
  const mine = stats.computeAtCursor;
  if (!isRecord(mine) || typeof mine.rowsPerToken !== 'number') {
    return undefined;
  }
  const doc = isRecord(stats.compute) ? stats.compute : {};
  const docRows = typeof doc.rowsPerToken === 'number' ? doc.rowsPerToken.toFixed(2) : '?';
  const rows = mine.rowsPerToken.toFixed(2);
  let text = mine.lastUpdate === false
    ? `this sentence: none recomputed on the last update (document mean ${docRows} layers per token; ${rows} when it was last computed)`
    : `this sentence: ${rows} layers recomputed per token (document mean ${docRows})`;
  if (typeof mine.learnersPerRow === 'number') {
    const docLearners = typeof doc.learnersPerRow === 'number' ? ` (document ${doc.learnersPerRow.toFixed(2)})` : '';
    text += `; ACM learners per row ${mine.learnersPerRow.toFixed(2)}${docLearners}`;
  }
  return text;
}

/** One-line summary of `vqlsp.documentStats` for a notification. */
export function statsSummary(stats: Record<string, unknown>): string {
  const parts: string[] = [];
  if (typeof stats.label === 'string') {
    const probabilities = stats.probabilities as Record<string, number> | undefined;
    const p = probabilities?.[stats.label];
    parts.push(`${stats.label}${typeof p === 'number' ? ` ${percent(p)}` : ''}`);
  }
  if (typeof stats.tokens === 'number') {
    parts.push(`${stats.tokens} tokens`);
  }
  if (typeof stats.reused_fraction === 'number') {
    parts.push(`reused ${percent(stats.reused_fraction)}`);
  }
  if (typeof stats.ms === 'number') {
    parts.push(`${stats.ms.toFixed(1)} ms`);
  }
  const sentence = cursorCompute(stats);
  if (sentence) {
    parts.push(sentence);
  }
  return `vqlsp: ${parts.join(' · ') || 'no stats yet'}`;
}
