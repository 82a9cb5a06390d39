/**
 * Message data with a value of every kind JSON and MessagePack both carry, for tests that check a
 * path delivers data exactly as it was published.
 */
export const EVERY_KIND_OF_DATA = {
  text: "héllo ✓ 日本 🎉",
  float: 1.5,
  negative: -70_000,
  large: 2 ** 40,
  nil: null,
  list: [1, "two", [3, { four: 4 }]],
  nested: { a: { b: { c: true } } },
} as const;
