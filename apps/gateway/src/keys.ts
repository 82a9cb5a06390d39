import { KeyObject, createPublicKey, createSecretKey } from "node:crypto";
import type { FastifyBaseLogger } from "fastify";
import { createRemoteJWKSet, errors as joseErrors } from "jose";
import { type KeyEntry, type VerificationKey, readKeySetFile } from "./config.js";
import { AuthError } from "./errors.js";

/** A key ready to verify with, and the algorithms a token verified with it may use. */
export interface ResolvedKey {
  key: KeyObject;
  algorithms: readonly string[];
}

/** The parts of a token's header that choose its key. */
export interface KeyHint {
  alg: string;
  kid?: unknown;
}

/**
 * Where a node finds the key for a token. Static keys answer at once; a remote JSON Web Key Set
 * answers from its cache, fetching when a token names a key it does not hold (at most once per
 * cooldown), and refreshing in the background without ever dropping the last good set.
 */
export interface Keyring {
  keyFor(hint: KeyHint): ResolvedKey | Promise<ResolvedKey>;
  /** Re-reads a JWT_KEYS file (on SIGHUP); returns what happened, in words for the log. */
  reload(): string;
  close(): void;
}

export function createKeyring(source: VerificationKey, deps: { logger: FastifyBaseLogger }): Keyring {
  switch (source.kind) {
    case "secret":
      return single({ key: createSecretKey(Buffer.from(source.secret)), algorithms: ["HS256", "HS384", "HS512"] });
    case "public": {
      const key = createPublicKey(source.pem);
      return single({ key, algorithms: algorithmsOf(key) });
    }
    case "keySet":
      return keySet(source.file, source.keys, deps);
    case "jwks":
      return remoteKeySet(source, deps);
  }
}

function single(key: ResolvedKey): Keyring {
  return { keyFor: () => key, reload: () => "nothing to reload: the key comes from the environment", close() {} };
}

function resolved(entry: KeyEntry): ResolvedKey {
  return {
    key: entry.type === "secret" ? createSecretKey(Buffer.from(entry.material)) : createPublicKey(entry.material),
    algorithms: entry.algorithms,
  };
}

/** JWT_KEYS: keys chosen by `kid`, so several are valid at once while keys rotate. */
function keySet(file: string | null, initial: ReadonlyMap<string, KeyEntry>, { logger }: { logger: FastifyBaseLogger }): Keyring {
  const load = (entries: ReadonlyMap<string, KeyEntry>) => new Map([...entries].map(([kid, entry]) => [kid, resolved(entry)]));
  let keys = load(initial);
  return {
    keyFor(hint) {
      if (typeof hint.kid !== "string") throw new AuthError("bad_signature", "the token names no kid, and JWT_KEYS chooses keys by kid");
      const key = keys.get(hint.kid);
      if (!key) throw new AuthError("bad_signature", `no key has kid ${hint.kid.slice(0, 60)}`);
      return key;
    },
    reload() {
      if (file === null) return "nothing to reload: JWT_KEYS is given inline";
      try {
        // A bad file is reported and ignored: the keys in use stay until a good one is read.
        keys = load(readKeySetFile(file));
      } catch (err) {
        logger.error({ err: err instanceof Error ? err.message : String(err) }, "JWT_KEYS file not reloaded; keeping the keys in use");
        return "the key file could not be used; the keys in use were kept";
      }
      return `reloaded ${keys.size} key(s) from ${file}`;
    },
    close() {},
  };
}

/** JWT_JWKS_URL through jose's remote key set, converted to key objects for verification. */
function remoteKeySet(source: Extract<VerificationKey, { kind: "jwks" }>, { logger }: { logger: FastifyBaseLogger }): Keyring {
  // Never stale by age: a failed fetch must not throw away keys that still verify. Freshness
  // comes from the background refresh below and from a fetch on an unknown kid.
  const remote = createRemoteJWKSet(new URL(source.url), {
    cacheMaxAge: Number.POSITIVE_INFINITY,
    cooldownDuration: source.cooldownMs,
    timeoutDuration: 5000,
  });
  let failing = false;
  const refresh = () =>
    remote.reload().then(
      () => {
        if (failing) logger.info({ url: source.url }, "JWT_JWKS_URL reachable again");
        failing = false;
      },
      (err: unknown) => {
        if (!failing)
          logger.warn(
            { url: source.url, err: err instanceof Error ? err.message : String(err) },
            "JWT_JWKS_URL could not be fetched; keeping the last good key set",
          );
        failing = true;
      },
    );
  void refresh();
  const timer = setInterval(refresh, source.refreshMs);
  timer.unref();
  const converted = new WeakMap<object, ResolvedKey>();
  return {
    async keyFor(hint) {
      let cryptoKey: Awaited<ReturnType<typeof remote>>;
      try {
        cryptoKey = await remote({ alg: hint.alg, ...(typeof hint.kid === "string" ? { kid: hint.kid } : {}) });
      } catch (err) {
        if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
          throw new AuthError("bad_signature", `no key of JWT_JWKS_URL matches kid ${String(hint.kid).slice(0, 60)} and alg ${hint.alg}`);
        }
        if (remote.jwks() !== undefined)
          throw new AuthError("bad_signature", `no key of JWT_JWKS_URL matches kid ${String(hint.kid).slice(0, 60)}`);
        throw new AuthError("keys_unavailable", `JWT_JWKS_URL could not be fetched: ${err instanceof Error ? err.message : String(err)}`);
      }
      let key = converted.get(cryptoKey);
      if (!key) {
        const object = KeyObject.from(cryptoKey);
        key = { key: object, algorithms: algorithmsOf(object) };
        converted.set(cryptoKey, key);
      }
      return key;
    },
    reload: () => {
      void refresh();
      return `refetching ${source.url}`;
    },
    close: () => clearInterval(timer),
  };
}

function algorithmsOf(key: KeyObject): readonly string[] {
  switch (key.asymmetricKeyType) {
    case "rsa":
      return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
    case "ed25519":
      return ["EdDSA", "Ed25519"];
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return curve === "prime256v1" ? ["ES256"] : curve === "secp384r1" ? ["ES384"] : curve === "secp521r1" ? ["ES512"] : [];
    }
    default:
      return [];
  }
}
