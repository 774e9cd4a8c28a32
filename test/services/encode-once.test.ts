import { describe, expect, it } from 'vitest';
import { GoodsServiceService, ListGoodsResponse } from '../../src/gen/services.js';
import { encodingSharedAnswersOnce } from '../../src/services/common/encode-once.js';

describe('encodingSharedAnswersOnce', () => {
  it('encodes an answer shared by many calls once, and each other answer for itself', () => {
    let encoded = 0;
    const definition = {
      ...GoodsServiceService,
      listGoods: {
        ...GoodsServiceService.listGoods,
        responseSerialize: (answer: ListGoodsResponse) => {
          encoded++;
          return GoodsServiceService.listGoods.responseSerialize(answer);
        },
      },
    };
    const serialize = encodingSharedAnswersOnce(definition).listGoods.responseSerialize;
    const shared: ListGoodsResponse = {
      results: [{ id: 1, name: 'a', category: 'b', price: 3, description: 'd' }],
      nextPageToken: '',
    };
    const first = serialize(shared);
    expect(serialize(shared)).toBe(first);
    expect(encoded).toBe(1);
    expect(ListGoodsResponse.decode(first)).toEqual(shared);
    const other = serialize({ results: [], nextPageToken: 'next' });
    expect(encoded).toBe(2);
    expect(ListGoodsResponse.decode(other).nextPageToken).toBe('next');
  });
});
