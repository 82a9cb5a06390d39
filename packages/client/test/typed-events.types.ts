// Checked by the typecheck, never run: an application's event map types the data listeners receive.
import type { SwitchboardClient } from "../src/index.js";

interface ShopEvents {
  order: { id: number; status: "paid" | "shipped" };
  note: string;
}

export function typedListeners(shop: SwitchboardClient<ShopEvents>, any: SwitchboardClient): void {
  shop.on("order", (order) => {
    const id: number = order.id;
    void id;
  });
  shop.on("note", (text) => text.toUpperCase());
  shop.on("welcome", (welcome) => welcome.user);
  // @ts-expect-error an event the map does not have
  shop.on("refund", () => {});
  // @ts-expect-error the data is a string, not an order
  shop.on("note", (note: { id: number }) => note.id);
  // Without a map, any name, and data of unknown shape.
  any.on("headline", (data, ...more) => [data, more]);
}
