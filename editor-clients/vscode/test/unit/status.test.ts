import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { isClassification } from '../../src/protocol';
import { ClassificationStore, statsReport, statsSummary, statusText, statusTooltip } from '../../src/status';
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
});
