import type { Revocations } from "./state.js";

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
   * @param maxTokenLifetimeMs beyond this a kick refuses nothing any more (every token it could
   *   refuse has expired): its entry is forgotten. Null keeps entries until Redis drops them.
   */
  constructor(private readonly maxTokenLifetimeMs: number | null) {}

  replace(revocations: Revocations): void {
    this.users = new Map(revocations.users);
    this.tokens = new Map(revocations.tokens);
  }

  refuseUser(user: string, before: number): void {
    this.users.set(user, Math.max(before, this.users.get(user) ?? 0));
  }

  allowUser(user: string): void {
    this.users.delete(user);
  }

  refuseToken(jti: string, exp: number): void {
    this.tokens.set(jti, exp);
  }

  /** Why a token with these claims is refused, or null. */
  check(user: string, iat: number | undefined, jti: string | undefined): string | null {
    const now = Date.now();
    if (jti !== undefined) {
      const exp = this.tokens.get(jti);
      if (exp !== undefined) {
        if (exp * 1000 > now) return "this token was revoked";
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
