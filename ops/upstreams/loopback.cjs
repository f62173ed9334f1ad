// Preload (node --require) that makes every TCP listen without an explicit
// host bind 127.0.0.1 instead of all interfaces.
//
// server-everything's streamableHttp mode calls app.listen(PORT) and offers no
// host option; a test must not open a port to the network, so the tests (and
// anyone running the server locally) load this file first:
//   PORT=3001 node --require ops/upstreams/loopback.cjs .../dist/index.js streamableHttp
"use strict";
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  const isPort = typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first));
  if (isPort && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  } else if (first && typeof first === "object" && first.path === undefined && first.host === undefined) {
    args[0] = { ...first, host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
