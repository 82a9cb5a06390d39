/** The JWT claims the gateway reads. The site claim's name is configurable (JWT_SITE_CLAIM). */
export interface TokenClaims {
  sub: string | number;
  iss?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  [claim: string]: unknown;
}

/** Who a verified socket is: its user id and, when the token names one, its normalised site host. */
export interface Identity {
  user: string;
  site: string | null;
}
