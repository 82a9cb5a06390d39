import type { Revocations } from "./state.js";

const MIN_SWEEP_AT = 1024;

/**
 * This node's copy of the revocations in force, so a handshake never waits for Redis: read whole
 * from the shared state whenever the broker becomes ready, and kept current by the kick, allow and
 * revoke control frames every node receives.
 */
export class RevocationMirror {
  /** User → tokens issued at or before this time (ms) are refused. */
  private users = new Map<string, number>();
  /** jti → refused until this exp (seconds). */
  private tokens = new Map<string, number>();
  /**
   * Entries at which the next sweep of the ones that refuse nothing any more runs. An entry is
   * otherwise dropped only when a token it names is checked again, so a stream of revocations for
   * tokens never seen again would grow the maps for good; doubling keeps sweeping O(1) per entry.
   */
  private sweepAt = MIN_SWEEP_AT;

  /**
   * @param maxTokenLifetimeMs beyond this a kick refuses nothing any more (every token it could
   *   refuse has expired): its entry is forgotten. Null keeps entries until Redis drops them.
   * @param clockToleranceMs a token is taken this long past its exp (JWT_CLOCK_TOLERANCE_SECONDS),
   *   so a revoked token stays refused that much longer
   */
  constructor(
    private readonly maxTokenLifetimeMs: number | null,
    private readonly clockToleranceMs = 0,
  ) {}

  replace(revocations: Revocations): void {
    this.users = new Map(revocations.users);
    this.tokens = new Map(revocations.tokens);
    this.sweep();
  }

  /** Entries held: kicked users and revoked tokens. */
  get size(): number {
    return this.users.size + this.tokens.size;
  }

  refuseUser(user: string, before: number): void {
    this.users.set(user, Math.max(before, this.users.get(user) ?? 0));
    if (this.size >= this.sweepAt) this.sweep();
  }

  allowUser(user: string): void {
    this.users.delete(user);
  }

  refuseToken(jti: string, exp: number): void {
    // An expired token is refused by its own exp already.
    if (this.refusesUntil(exp) <= Date.now()) return;
    this.tokens.set(jti, exp);
    if (this.size >= this.sweepAt) this.sweep();
  }

  /** Drops what refuses nothing any more: revoked tokens past their exp, kicks older than any token may live. */
  private sweep(): void {
    const now = Date.now();
    for (const [jti, exp] of this.tokens) if (this.refusesUntil(exp) <= now) this.tokens.delete(jti);
    const lifetime = this.maxTokenLifetimeMs;
    if (lifetime !== null) for (const [user, before] of this.users) if (before + lifetime < now) this.users.delete(user);
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
    const before = this.users.get(user);
    if (before === undefined) return null;
    if (this.maxTokenLifetimeMs !== null && before + this.maxTokenLifetimeMs < now) {
      this.users.delete(user);
      return null;
    }
    // A token without iat cannot show it was issued after the kick.
    if (iat === undefined || iat * 1000 <= before) return "the user was kicked after this token was issued";
    return null;
  }
}
