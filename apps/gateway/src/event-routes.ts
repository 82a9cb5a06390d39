import { type ErrorBody, normaliseSiteHost, preview, userIdOf } from "@switchboard/protocol";
import { detailed } from "./errors.js";

/** What fills a route's placeholders: the publish's own `user` and `site`. */
export interface RouteFill {
  user?: string | number;
  site?: string;
}

export type RouteResult = { ok: true; room: string } | { ok: false; error: ErrorBody };

/**
 * The event → room table. EVENT_ROUTES is fixed at start-up; routes registered at run time (kept
 * by the broker's shared state, so every node has the same ones) come on top and may replace one.
 */
export class EventRoutes {
  private registered: ReadonlyMap<string, string> = new Map();

  constructor(private readonly configured: ReadonlyMap<string, string>) {}

  /** Replaces the routes registered at run time (read from the shared state). */
  setRegistered(routes: ReadonlyMap<string, string>): void {
    this.registered = routes;
  }

  /** Every route in effect, configured and registered, each with where it comes from. */
  list(): { event: string; room: string; source: "EVENT_ROUTES" | "registered" }[] {
    const all = new Map<string, { event: string; room: string; source: "EVENT_ROUTES" | "registered" }>();
    for (const [event, room] of this.configured) all.set(event, { event, room, source: "EVENT_ROUTES" });
    for (const [event, room] of this.registered) all.set(event, { event, room, source: "registered" });
    return [...all.values()].sort((a, b) => a.event.localeCompare(b.event));
  }

  /**
   * The room an event is routed to, its placeholders filled: route_unknown when the event has no
   * route, route_incomplete when the route needs a `user` or `site` the publish did not give.
   */
  resolve(event: string, fill: RouteFill): RouteResult {
    const template = this.registered.get(event) ?? this.configured.get(event);
    if (template === undefined)
      return { ok: false, error: detailed("route_unknown", `the event ${preview(event)} has no route, and the publish names no room`) };
    let room = template;
    if (template.includes("{user}")) {
      if (fill.user === undefined)
        return {
          ok: false,
          error: detailed("route_incomplete", `the route of ${preview(event)} is ${template}, and the publish gives no user`),
        };
      let user: string;
      try {
        user = userIdOf(fill.user);
      } catch {
        return {
          ok: false,
          error: detailed("route_incomplete", `the route of ${preview(event)} needs a user id, not ${preview(fill.user)}`),
        };
      }
      room = room.replaceAll("{user}", user);
    }
    if (template.includes("{site}")) {
      const site = fill.site === undefined ? null : normaliseSiteHost(fill.site);
      if (site === null)
        return {
          ok: false,
          error: detailed("route_incomplete", `the route of ${preview(event)} is ${template}, and the publish gives no site host`),
        };
      room = room.replaceAll("{site}", site);
    }
    return { ok: true, room };
  }
}
