// Starts npm `oidc-provider` (a certified OpenID Connect / OAuth 2.1 authorization server) for the
// OAuth end-to-end tests; this file is only its configuration. Usage:
//   node oauth_provider.mjs <port> <config.json>
// config.json: {"keys": [private JWK, ...] (the first signs), "agents": {"<login>": ["agent-…"]},
//               "introspection_client": {"client_id", "client_secret"}, "opaque_client_name": "<name>"}
// Dynamic client registration, PKCE (required), resource indicators (RFC 8707: JWT access tokens
// whose aud is the requested resource; opaque ones for clients named `opaque_client_name`), RFC 7662
// introspection,
// and the development login + consent pages, which the tests fill in over HTTP.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const issuer = `http://127.0.0.1:${port}`;
const SCOPES = 'letta:conversations letta:agent';

const provider = new Provider(issuer, {
  jwks: { keys: config.keys },
  clients: [
    {
      ...config.introspection_client,
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  scopes: ['openid', 'offline_access', ...SCOPES.split(' ')],
  pkce: { required: () => true },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  extraTokenClaims: async (ctx, token) => {
    const agents = config.agents?.[token.accountId];
    return agents ? { letta_agents: agents } : undefined;
  },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client) => client.clientId === config.introspection_client.client_id,
    },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator, client) => ({
        scope: SCOPES,
        audience: resourceIndicator,
        accessTokenTTL: 600,
        accessTokenFormat: client.clientName === config.opaque_client_name ? 'opaque' : 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  cookies: { keys: ['letta-conversations-mcp-tests-cookie-key'] },
  // Consent once per grant; the tests fill in the login and consent pages.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
  },
});

provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
