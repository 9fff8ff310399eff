// The master's Graph photo API driven by Microsoft's own Graph JavaScript
// client (@microsoft/microsoft-graph-client), as software written for
// Microsoft 365 would call it, with an authentication provider of ours.
// Run by tests/integration/test_master_graph_client.py, which checks what
// it prints: one JSON document of what each call returned.
//
// Environment: GRAPH_BASE (the master's https://host:port/), GRAPH_AUTH
// ("basic USER PASSWORD" or "bearer TOKEN"), GRAPH_OTHER (another user's
// address), GRAPH_IMAGE (a JPEG to set), GRAPH_OUT (a directory for the
// photos read). The master's certificate is trusted through
// NODE_EXTRA_CA_CERTS.
"use strict";

const fs = require("fs");
const path = require("path");
const graph = require("@microsoft/microsoft-graph-client");

const base = process.env.GRAPH_BASE;
const [scheme, ...cred] = process.env.GRAPH_AUTH.split(" ");
const other = process.env.GRAPH_OTHER;
const out = process.env.GRAPH_OUT;

// A bearer token: the client's own AuthenticationHandler asks this
// provider and sends "Authorization: Bearer <token>".
class TokenProvider {
	constructor(token) {
		this.token = token;
	}

	async getAccessToken() {
		return this.token;
	}
}

// Basic: the client's handlers speak only Bearer, so a middleware of ours
// in the chain, before the client's HTTPMessageHandler, signs each request.
class BasicAuthHandler {
	constructor(user, password) {
		this.value = "Basic " +
		    Buffer.from(user + ":" + password).toString("base64");
	}

	async execute(context) {
		const headers = context.options.headers || {};

		if (headers instanceof Headers)
			headers.set("Authorization", this.value);
		else
			headers.Authorization = this.value;
		context.options.headers = headers;
		return this.next.execute(context);
	}

	setNext(next) {
		this.next = next;
	}
}

function client() {
	const host = new URL(base).hostname;

	if (scheme === "bearer")
		return graph.Client.initWithMiddleware({
			authProvider: new TokenProvider(cred[0]),
			baseUrl: base,
			defaultVersion: "v1.0",
			customHosts: new Set([host]),
		});
	const auth = new BasicAuthHandler(cred[0], cred[1]);
	auth.setNext(new graph.HTTPMessageHandler());
	return graph.Client.initWithMiddleware({
		middleware: auth,
		baseUrl: base,
		defaultVersion: "v1.0",
		customHosts: new Set([host]),
	});
}

// What a call gave: its value, or the GraphError the client made of the
// answer (status and Graph's error code).
async function attempt(fn) {
	try {
		return { ok: true, value: await fn() };
	} catch (e) {
		return { ok: false, status: e.statusCode, code: e.code,
		    message: e.message };
	}
}

async function photo(c, api, name) {
	const r = await attempt(() => c.api(api)
	    .responseType(graph.ResponseType.ARRAYBUFFER).get());

	if (r.ok) {
		fs.writeFileSync(path.join(out, name), Buffer.from(r.value));
		r.value = name;
	}
	return r;
}

async function main() {
	const c = client();
	const res = {};
	const sizes = ["48x48", "64x64", "96x96", "120x120", "240x240",
	    "360x360", "432x432", "504x504", "648x648"];

	res.me_value = await photo(c, "/me/photo/$value", "me.jpg");
	res.me_meta = await attempt(() => c.api("/me/photo").get());
	res.me_photos = await attempt(() => c.api("/me/photos").get());
	res.sizes = {};
	for (const s of sizes)
		res.sizes[s] = await photo(c, "/me/photos/" + s + "/$value",
		    "me-" + s + ".jpg");
	res.other_value = await photo(c, "/users/" + other + "/photo/$value",
	    "other.jpg");
	res.other_meta = await attempt(() => c.api("/users/" + other +
	    "/photo").get());
	res.ghost = await attempt(() => c.api(
	    "/users/ghost@contoso.com/photo/$value").get());
	res.put_other = await attempt(() => c.api("/users/" + other +
	    "/photo/$value").header("Content-Type", "image/jpeg")
	    .put(fs.readFileSync(process.env.GRAPH_IMAGE)));
	res.put = await attempt(() => c.api("/me/photo/$value")
	    .header("Content-Type", "image/jpeg")
	    .put(fs.readFileSync(process.env.GRAPH_IMAGE)));
	res.after_put = await attempt(() => c.api("/me/photo").get());
	res.put_value = await photo(c, "/me/photo/$value", "put.jpg");
	res.put_junk = await attempt(() => c.api("/me/photo/$value")
	    .header("Content-Type", "image/jpeg")
	    .put(Buffer.from("not an image")));
	res.delete = await attempt(() => c.api("/me/photo").delete());
	res.after_delete = await attempt(() => c.api("/me/photo/$value")
	    .get());
	process.stdout.write(JSON.stringify(res) + "\n");
}

main().catch((e) => {
	process.stderr.write("photo-client: " + (e.stack || e) + "\n");
	process.exit(1);
});
