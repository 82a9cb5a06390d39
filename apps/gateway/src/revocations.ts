import type { Revocations, UserRefusal } from "./state.js";

const MIN_SWEEP_AT = 1024;
const FULL_SWEEP_INTERVAL_MS = 1000;

/**
 * This node's copy of the revocations in force, so a handshake never waits for Redis: read whole
 * from the shared state whenever the broker becomes ready, and kept current by the kick, allow and
 * revoke control frames every node receives. It holds at most REVOCATIONS_MAX entries: the server
 * API refuses a new revocation past that (`revocation_limit`), and one arriving by another path
 * (the emitter, a raw control frame) is not held, which the caller reports.
 */
export class RevocationMirror {
  /** User → its tokens issued at or before `before` (ms) are refused, until the earlier of `until` and `before` plus the longest token lifetime. */
  private users = new Map<string, UserRefusal>();
  /** jti → refused until this exp (seconds). */
  private tokens = new Map<string, number>();
  /**
   * Entries at which the next sweep of the ones that refuse nothing any more runs. An entry is
   * otherwise dropped only when a token it names is checked again, so a stream of revocations for
   * tokens never seen again would grow the maps for good; doubling keeps sweeping O(1) per entry.
   */
  private sweepAt = MIN_SWEEP_AT;
  /**
   * When (ms) the first entry held stops refusing anything, and when a full mirror may sweep again: it
   * sweeps once the first has passed and at most once a second, not on every revocation it is sent.
   */
  private nextExpiry = Number.POSITIVE_INFINITY;
  private nextFullSweep = 0;

  /**
   * @param maxTokenLifetimeMs beyond this a kick refuses nothing any more (every token it could
   *   refuse has expired): its entry is forgotten. Null: a kick lasts as long as its refusal does in Redis.
   * @param clockToleranceMs a token is taken this long past its exp (JWT_CLOCK_TOLERANCE_SECONDS),
   *   so a revoked token stays refused that much longer
   */
  constructor(
    private readonly maxTokenLifetimeMs: number | null,
    private readonly clockToleranceMs = 0,
    /** REVOCATIONS_MAX: kicked users and revoked tokens held together. */
    readonly maxEntries = Number.POSITIVE_INFINITY,
  ) {}

  /** Takes the shared state's revocations in place of this node's; returns how many were past maxEntries and not held. */
  replace(revocations: Revocations): number {
    this.users = new Map();
    this.tokens = new Map();
    let left = 0;
    // A value that is not a time (a key written by hand) refuses nothing.
    for (const [user, { before, until }] of revocations.users)
      if (Number.isSafeInteger(before) && !Number.isNaN(until) && !this.refuseUser(user, before, until)) left++;
    for (const [jti, exp] of revocations.tokens) if (Number.isSafeInteger(exp) && !this.refuseToken(jti, exp)) left++;
    return left;
  }

  /** Entries held: kicked users and revoked tokens. */
  get size(): number {
    return this.users.size + this.tokens.size;
  }

  /**
   * Whether a new revocation would be held: there is room, or it replaces one held already. Past
   * maxEntries, what has stopped refusing anything is swept first (within a second of it stopping).
   */
  hasRoomFor(kind: "user" | "token", key: string): boolean {
    if ((kind === "user" ? this.users : this.tokens).has(key) || this.size < this.maxEntries) return true;
    const now = Date.now();
    if (this.nextExpiry > now || this.nextFullSweep > now) return false;
    this.nextFullSweep = now + FULL_SWEEP_INTERVAL_MS;
    this.sweep();
    return this.size < this.maxEntries;
  }

  /**
   * Refuses the user's tokens issued at or before `before` (ms), until `until` (ms; a kick frame
   * without one lasts until the node next reads Redis); false when it is past maxEntries and not held.
   */
  refuseUser(user: string, before: number, until = Number.POSITIVE_INFINITY): boolean {
    const held = this.users.get(user);
    const refusal = held === undefined ? { before, until } : { before: Math.max(before, held.before), until: Math.max(until, held.until) };
    if (this.endOf(refusal) <= Date.now()) return true;
    if (!this.hasRoomFor("user", user)) return false;
    this.users.set(user, refusal);
    this.nextExpiry = Math.min(this.nextExpiry, this.endOf(refusal));
    if (this.size >= this.sweepAt) this.sweep();
    return true;
  }

  /** When (ms) a kick refuses nothing any more: its refusal has expired, or every token it could refuse has. */
  private endOf({ before, until }: UserRefusal): number {
    return this.maxTokenLifetimeMs === null ? until : Math.min(until, before + this.maxTokenLifetimeMs);
  }

  allowUser(user: string): void {
    this.users.delete(user);
  }

  /** Refuses the token with this jti until its exp (seconds); false when it is past maxEntries and not held. */
  refuseToken(jti: string, exp: number): boolean {
    // An expired token is refused by its own exp already.
    if (this.refusesUntil(exp) <= Date.now()) return true;
    if (!this.hasRoomFor("token", jti)) return false;
    this.tokens.set(jti, exp);
    this.nextExpiry = Math.min(this.nextExpiry, this.refusesUntil(exp));
    if (this.size >= this.sweepAt) this.sweep();
    return true;
  }

  /** Drops what refuses nothing any more: revoked tokens past their exp, kicks older than any token may live. */
  private sweep(): void {
    const now = Date.now();
    let nextExpiry = Number.POSITIVE_INFINITY;
    for (const [jti, exp] of this.tokens) {
      const until = this.refusesUntil(exp);
      if (until <= now) this.tokens.delete(jti);
      else if (until < nextExpiry) nextExpiry = until;
    }
    for (const [user, refusal] of this.users) {
      const end = this.endOf(refusal);
      if (end <= now) this.users.delete(user);
      else if (end < nextExpiry) nextExpiry = end;
    }
    this.nextExpiry = nextExpiry;
    this.sweepAt = Math.max(MIN_SWEEP_AT, 2 * this.size);
  }

  /** Until when (ms) a revocation of a token with this exp (seconds) refuses it. */
  private refusesUntil(exp: number): number {
    return exp * 1000 + this.clockToleranceMs;
  }

  /** Why a token with these claims is refused, or null. */
  check(user: string, iat: number | undefined, jti: string | undefined): string | null {
    const now = Date.now();
    if (jti !== undefined) {
      const exp = this.tokens.get(jti);
      if (exp !== undefined) {
        if (this.refusesUntil(exp) > now) return "this token was revoked";
        this.tokens.delete(jti);
      }
    }
    const refusal = this.users.get(user);
    if (refusal === undefined) return null;
    if (this.endOf(refusal) <= now) {
      this.users.delete(user);
      return null;
    }
    // A token without iat cannot show it was issued after the kick.
    if (iat === undefined || iat * 1000 <= refusal.before) return "the user was kicked after this token was issued";
    return null;
  }
}
