import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { isClassification } from '../../src/protocol';
import { ClassificationStore, cursorCompute, statsReport, statsSummary, statusText, statusTooltip } from '../../src/status';
import { classification } from './helpers';

describe('isClassification', () => {
  it('accepts the contract and rejects malformed params', () => {
    assert.ok(isClassification(classification()));
    assert.ok(isClassification(classification({ version: null })));
    assert.ok(isClassification(classification({ textHash: null })));  // an older version's label
    assert.ok(!isClassification(null));
    assert.ok(!isClassification({ ...classification(), label: 3 }));
    assert.ok(!isClassification({ ...classification(), probabilities: { a: 'x' } }));
    const withoutHash: Partial<ReturnType<typeof classification>> = classification();
    delete withoutHash.textHash;
    assert.ok(!isClassification(withoutHash));
  });
});

describe('ClassificationStore', () => {
  it('keeps the newest version per document', () => {
    const store = new ClassificationStore();
    assert.ok(store.update(classification({ version: 5, label: 'tech' })));
    assert.ok(!store.update(classification({ version: 4, label: 'sport' })));
    assert.equal(store.get('file:///notes.md')?.label, 'tech');
    assert.ok(store.update(classification({ version: 5, label: 'business' })), 'same version: a newer result of it');
    assert.equal(store.get('file:///notes.md')?.label, 'business');
    store.forget('file:///notes.md');
    assert.equal(store.get('file:///notes.md'), undefined);
  });
});

describe('status text', () => {
  it('shows label and probability', () => {
    assert.equal(statusText(classification()), '$(symbol-keyword) sport 87%');
  });

  it('tooltip ranks probabilities and shows reuse and latency', () => {
    assert.equal(
      statusTooltip(classification()),
      ['vqlsp: sport (87.3%)', '', 'sport: 87.3%', 'business: 10.0%', 'tech: 2.7%', '', 'reused 93% of the work · 12.3 ms · 812 tokens', 'version 3'].join('\n'),
    );
  });

  it('summarises documentStats', () => {
    const stats = { ...classification(), cachedMb: 3.5 };
    assert.equal(statsSummary(stats), 'vqlsp: sport 87% · 812 tokens · reused 93% · 12.3 ms');
    assert.equal(statsSummary({}), 'vqlsp: no stats yet');
    assert.ok(statsReport(stats).includes('cachedMb: 3.5'));
    assert.ok(statsReport(stats).includes('probabilities: {"sport":0.873'));
  });

  it('puts the compute of the sentence under the cursor beside the document mean', () => {
    const compute = { rowsPerToken: 0.5, learnersPerRow: null };
    const stats = { ...classification(), compute, computeAtCursor: { rowsPerToken: 4, learnersPerRow: null, lastUpdate: true } };
    const line = 'this sentence: 4.00 layers recomputed per token (document mean 0.50)';
    assert.equal(cursorCompute(stats), line);
    assert.equal(statsSummary(stats), `vqlsp: sport 87% · 812 tokens · reused 93% · 12.3 ms · ${line}`);
    assert.equal(statsReport(stats).split('\n')[0], line);
    const untouched = { compute, computeAtCursor: { rowsPerToken: 2, learnersPerRow: null, lastUpdate: false } };
    assert.equal(cursorCompute(untouched),
      'this sentence: none recomputed on the last update (document mean 0.50 layers per token; 2.00 when it was last computed)');
    const acm = { compute: { rowsPerToken: 1, learnersPerRow: 2.5 }, computeAtCursor: { rowsPerToken: 3, learnersPerRow: 1.25, lastUpdate: true } };
    assert.equal(cursorCompute(acm), 'this sentence: 3.00 layers recomputed per token (document mean 1.00); ACM learners per row 1.25 (document 2.50)');
    // the cursor on no sentence (null), or a server that predates computeAtCursor
    assert.equal(cursorCompute({ ...stats, computeAtCursor: null }), undefined);
    assert.equal(cursorCompute({ ...classification() }), undefined);
    assert.equal(statsSummary({ ...stats, computeAtCursor: null }), 'vqlsp: sport 87% · 812 tokens · reused 93% · 12.3 ms');
  });
});
