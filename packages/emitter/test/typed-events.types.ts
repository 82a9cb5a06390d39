// Checked by the typecheck, never run: an application's event map types what the emitter emits.
import type { SwitchboardEmitter } from "../src/index.js";

interface ShopEvents {
  order: { id: number; status: "paid" | "shipped" };
  note: string;
}

export function typedEmits(shop: SwitchboardEmitter<ShopEvents>, any: SwitchboardEmitter): void {
  void shop.toUser(42).emit("order", { id: 7, status: "shipped" });
  void shop.toSite("shop.example").except("user(1)").emit("note", "hello");
  void shop.emit("note", "to everyone");
  // @ts-expect-error an event the map does not have
  void shop.toUser(42).emit("refund", { id: 7 });
  // @ts-expect-error data of the wrong shape
  void shop.toUser(42).emit("order", { id: "7", status: "shipped" });
  // @ts-expect-error the gateway's own events are never published
  void any.emit("welcome", {});
  // Without a map, any other name and any data.
  void any.to("topic(news)").emit("headline", { text: "hi" });
}
