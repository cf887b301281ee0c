/**
 * The vqlsp protocol extensions the client understands, as plain types.
 *
 * Contract (shared with server/vqlsp/lsp/): the server pushes a
 * `vqlsp/classification` notification after every update of a document, and
 * answers `workspace/executeCommand` `vqlsp.documentStats` with `[uri]`.
 * Nothing here imports `vscode`, so the Node smoke test uses it unchanged.
 */

export const CLASSIFICATION_NOTIFICATION = 'vqlsp/classification';
export const RESYNC_NOTIFICATION = 'vqlsp/resync';
export const DOCUMENT_STATS_COMMAND = 'vqlsp.documentStats';
export const DIAGNOSTIC_SOURCE = 'vqlsp';

/** Params of `vqlsp/classification`: the document label of one version. */
export interface Classification {
  uri: string;
  version: number | null;
  /** null when the model has no document head */
  label: string | null;
  probabilities: Record<string, number>;
  tokens: number;
  /** Fraction of the work (rows x layers) reused from the cached state, 0..1. */
  reused_fraction: number;
  ms: number;
  /** sha256 hex of the text the label describes; null when that is not the current text or it is huge. */
  textHash: string | null;
}

/** Result of `vqlsp.documentStats`: a classification plus whatever else the server reports. */
export type DocumentStats = Classification & Record<string, unknown>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks a notification's params before anything trusts them (the server is another process). */
export function isClassification(value: unknown): value is Classification {
  if (!isRecord(value)) {
    return false;
  }
  const { uri, version, label, probabilities, tokens, reused_fraction, ms, textHash } = value;
  return (
    typeof uri === 'string' &&
    (typeof version === 'number' || version === null) &&
    (typeof label === 'string' || label === null) &&
    isRecord(probabilities) &&
    Object.values(probabilities).every((p) => typeof p === 'number') &&
    typeof tokens === 'number' &&
    typeof reused_fraction === 'number' &&
    typeof ms === 'number' &&
    (typeof textHash === 'string' || textHash === null)
  );
}

/**
 * Params of `vqlsp/resync`: the server no longer trusts its copy of a document (a
 * change it could not apply) and withholds results until it gets the whole text.
 */
export interface Resync {
  uri: string;
  version: number | null;
  reason: string;
}

export function isResync(value: unknown): value is Resync {
  return (
    isRecord(value) &&
    typeof value.uri === 'string' &&
    (typeof value.version === 'number' || value.version === null) &&
    typeof value.reason === 'string'
  );
}
