// MemoryX gateway (njs 0.7): model routing, member health, the model list, readiness, API keys
// and their policies, usage per key.
// Static code: every value it uses comes from two modules the role renders next to it
// (found through js_path): gateway_data.js (models, pools, limits, health settings) and
// api_keys.js (SHA-256 of each key -> the key's name; no key is ever stored in clear). The
// drained members (rolling restart) are read at every request from a state file Ansible
// rewrites atomically (DATA.drained_file), so a drain or an undrain reloads nothing.
import crypto from 'crypto';
import fs from 'fs';
import DATA from 'gateway_data.js';
import KEYS from 'api_keys.js';

// health endpoint per backend kind
var HEALTH_PATHS = {vllm: '/health', ollama: '/api/version'};

// "model": "...", found without parsing a large body (JSON.parse of many small objects
// costs about 14 times the body, held until the request ends: njs has no garbage collector).
var MODEL_FIELD = /"model"\s*:\s*("(?:[^"\\\x00-\x1f]|\\.)*")/g;
// What the gateway reflects in a message or the access log: printable ASCII only.
var PRINTABLE = /^[\x20-\x7e]{1,256}$/;
var TOKEN = /^Bearer +([\x21-\x7e]+) *$/i;

function has(object, key) {
    return Object.prototype.hasOwnProperty.call(object, key);
}

function sendJson(r, status, body) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify(body));
}

function sendError(r, status, message, param, code) {
    sendJson(r, status, {error: {message: message, type: 'invalid_request_error', param: param, code: code}});
}

// js_set $mx_key_name: the name of the API key the request carries, '' when none matches.
// The key is hashed and the hash looked up: exact, case-sensitive, any printable key.
function keyName(r) {
    try {
        var header = r.headersIn.Authorization;
        if (typeof header !== 'string' || header.length > DATA.max_key_header) {
            return '';
        }
        var match = TOKEN.exec(header);
        if (match === null) {
            return '';
        }
        var digest = crypto.createHash('sha256').update(match[1]).digest('hex');
        return has(KEYS, digest) ? KEYS[digest] : '';
    } catch (e) {
        return '';  // a header that is not even a string of bytes njs can match
    }
}

// A small body is parsed whole (so a malformed one is refused here); a larger one is
// scanned for its "model" field instead, and the engine judges the rest of its JSON.
function findModel(text) {
    if (text.length <= DATA.json_parse_limit) {
        var body;
        try {
            body = JSON.parse(text);
        } catch (e) {
            return {status: 400, message: 'We could not parse the JSON body of your request. The request body must be a JSON object.', code: 'invalid_json'};
        }
        if (body === null || typeof body !== 'object' || Array.isArray(body)) {
            return {status: 400, message: 'The request body must be a JSON object.', code: 'invalid_json'};
        }
        return {model: body.model};
    }
    if (!/^\s*\{/.test(text.substring(0, 64))) {
        return {status: 400, message: 'The request body must be a JSON object.', code: 'invalid_json'};
    }
    // Every "model": "<string>" of the body: one distinct value routes; a nested one that
    // differs (say, in metadata) makes the body ambiguous to route without parsing it.
    var found = [];
    try {
        var match;
        MODEL_FIELD.lastIndex = 0;
        while ((match = MODEL_FIELD.exec(text)) !== null) {
            var value = JSON.parse(match[1]);
            if (found.indexOf(value) < 0) {
                found.push(value);
            }
        }
    } catch (e) {
        return {status: 400, message: 'We could not parse the JSON body of your request. The request body must be a JSON object.', code: 'invalid_json'};
    }
    if (found.length > 1) {
        return {status: 400, message: 'The request body names more than one model.', code: 'invalid_json'};
    }
    return {model: found.length ? found[0] : undefined};
}

// ---- drained members: {"drained": [name, ...]}. No file means none drained; a file that
// cannot be read or parsed is logged and counts as none drained (the pools keep serving).
function readDrained() {
    var drained = {};
    var text;
    try {
        text = fs.readFileSync(DATA.drained_file);
    } catch (e) {
        if (e.code !== 'ENOENT') {
            ngx.log(ngx.ERR, 'gateway: cannot read ' + DATA.drained_file + ': ' + e.message);
        }
        return drained;
    }
    try {
        var names = JSON.parse(text).drained;
        if (Array.isArray(names)) {
            names.forEach(function (name) { drained[name] = true; });
        }
    } catch (e) {
        ngx.log(ngx.ERR, 'gateway: ' + DATA.drained_file + ' is not JSON: ' + e.message);
    }
    return drained;
}

// ---- member health. Open-source nginx has no active health checks and njs 0.7 no shared
// memory, so the workers share one small state file: {time, down: {member: true}}. The first
// request that finds it older than health.interval_ms (and takes the lock file) probes every
// member (vLLM /health, Ollama /api/version; each probe at most js_fetch_timeout) and rewrites
// it; every request then proxies to the upstream of its pool's members that answered (the
// role renders one upstream per subset: pool_<name>__<1 per member in, 0 out>).

function readHealth() {
    try {
        var state = JSON.parse(fs.readFileSync(DATA.health.file));
        return typeof state.time === 'number' && state.down ? state : {time: 0, down: {}};
    } catch (e) {
        return {time: 0, down: {}};
    }
}

function takeLock(now) {
    var lock = DATA.health.file + '.lock';
    try {
        fs.writeFileSync(lock, String(now), {flag: 'wx'});
        return true;
    } catch (e) {
        // held: steal it only from a prober that died (older than two probe timeouts)
    }
    try {
        if (now - Number(fs.readFileSync(lock)) > DATA.health.lock_ms) {
            fs.unlinkSync(lock);
            fs.writeFileSync(lock, String(now), {flag: 'wx'});
            return true;
        }
    } catch (e) {
        // another request took it meanwhile
    }
    return false;
}

function releaseLock() {
    try {
        fs.unlinkSync(DATA.health.file + '.lock');
    } catch (e) {
        // already gone
    }
}

// Probe every member; one already down is probed again only every 5 intervals, so that a
// hung member makes the probing request wait for its timeout once per 5 intervals at most.
// down: member -> time of its last failed probe.
function probeAll(previous, drained) {
    var now = Date.now();
    var down = {};
    var checks = [];
    Object.keys(DATA.pools).forEach(function (name) {
        var pool = DATA.pools[name];
        pool.members.forEach(function (member) {
            if (has(drained, member.name)) {
                return;
            }
            var since = has(previous.down, member.name) ? Number(previous.down[member.name]) : 0;
            if (since && now - since < 5 * DATA.health.interval_ms) {
                down[member.name] = since;
                return;
            }
            checks.push(probe(pool.kind, member).then(function (ok) { return {name: member.name, ok: ok}; }));
        });
    });
    return Promise.all(checks).then(function (results) {
        results.forEach(function (result) {
            if (!result.ok) {
                down[result.name] = now;
            }
        });
        var state = {time: Date.now(), down: down};
        try {
            var tmp = DATA.health.file + '.' + process.pid;
            fs.writeFileSync(tmp, JSON.stringify(state));
            fs.renameSync(tmp, DATA.health.file);
        } catch (e) {
            // not writable: requests keep using whole pools
        }
        return state;
    });
}

// Call next(health) with a fresh enough health state (probing first when it is stale).
function withHealth(drained, next) {
    var health = readHealth();
    var now = Date.now();
    if (now - health.time < DATA.health.interval_ms || !takeLock(now)) {
        next(health);
        return;
    }
    probeAll(health, drained).then(function (state) {
        releaseLock();
        next(state);
    }, function () {
        releaseLock();
        next(health);
    });
}

// The upstream of `pool` without its drained members and those that failed their last probe
// (when every member that is not drained failed, all of those: nginx's passive checks then
// decide); null when every member is drained. The role renders an upstream per subset of
// members (pools over max_subset_members: per one or two members out; drained ones stay out
// first).
function upstreamFor(pool, health, drained) {
    var members = DATA.pools[pool].members;
    var serving = members.filter(function (m) { return !has(drained, m.name); });
    if (serving.length === 0) {
        return null;
    }
    var healthy = serving.filter(function (m) { return !has(health.down, m.name); });
    var chosen = healthy.length > 0 ? healthy : serving;
    if (chosen.length === members.length) {
        return 'pool_' + pool;
    }
    var out = members.filter(function (m) { return chosen.indexOf(m) < 0; });
    if (members.length > DATA.health.max_subset_members && out.length > 2) {
        out = out.filter(function (m) { return has(drained, m.name); })
            .concat(out.filter(function (m) { return !has(drained, m.name); })).slice(0, 2);
    }
    return 'pool_' + pool + '__' + members.map(function (m) { return out.indexOf(m) < 0 ? '1' : '0'; }).join('');
}

// ---- key policies (README, "Key policies"): the models the request's key (or trusted client:
// $mx_key names either) may use, null when it may use every one (no models in its policy, or
// authentication off).
function keyModels(r) {
    var name = r.variables.mx_key;
    return name && has(DATA.key_models, name) ? DATA.key_models[name] : null;
}

function poolModels(pool) {
    return Object.keys(DATA.models).filter(function (m) { return DATA.models[m] === pool; });
}

// 403 for a model or pool outside the key's policy, in the route's error shape (Ollama's on /api/).
function notAllowed(r, what, param) {
    var name = r.variables.mx_key;
    var who = DATA.trusted.indexOf(name) >= 0 ? 'The trusted client ' : 'The API key ';
    var message = who + name + ' may not use ' + what + '. Its models: ' + keyModels(r).join(', ');
    if (r.uri.substring(0, 5) === '/api/') {
        sendJson(r, 403, {error: message});
    } else {
        sendError(r, 403, message, param, 'model_not_allowed');
    }
}

// Every member of the pool is drained (rolling restart of a pool of one): 503 at once.
function restarting(r, pool) {
    r.headersOut['Retry-After'] = String(DATA.retry_after);
    sendJson(r, 503, {error: {message: 'The ' + pool + ' pool is restarting. Retry after ' + DATA.retry_after + ' seconds.',
                              type: 'server_error', param: null, code: 'pool_restarting'}});
}

// Proxy to `pool`'s upstream of the moment (drains and health), through `location`.
function proxyTo(r, pool, location) {
    var drained = readDrained();
    withHealth(drained, function (health) {
        var upstream = upstreamFor(pool, health, drained);
        if (upstream === null) {
            restarting(r, pool);
            return;
        }
        r.variables.mx_upstream = upstream;
        r.internalRedirect(location);
    });
}

// js_content of fixed routes: pick the pool's upstream, hand over to $mx_next. A key limited to
// some models may use a pool's own route only if it may use every model of the pool (the body's
// model is the engine's to judge there).
function pass(r) {
    var pool = r.variables.mx_pool;
    var allowed = keyModels(r);
    if (allowed !== null && poolModels(pool).some(function (m) { return allowed.indexOf(m) < 0; })) {
        notAllowed(r, 'the ' + pool + ' pool', null);
        return;
    }
    proxyTo(r, pool, r.variables.mx_next);
}

// js_content for route_by_model locations: read `model`, hand over to @pool_<name>.
function route(r) {
    var text;
    try {
        text = r.requestText;
    } catch (e) {
        text = null;
    }
    if (text === null) {
        // the body went to a temporary file (client_body_buffer_size below the body limit)
        sendError(r, 413, 'The request body is too large for the gateway to route.', null, 'request_too_large');
        return;
    }
    var found = findModel(text === undefined ? '' : text);
    if (found.status) {
        sendError(r, found.status, found.message, null, found.code);
        return;
    }
    var model = found.model;
    if (typeof model !== 'string' || model.length === 0) {
        sendError(r, 400, 'You must provide a model parameter.', 'model', null);
        return;
    }
    var printable = PRINTABLE.test(model);
    r.variables.mx_model = printable ? model : '(not printable)';
    var allowed = keyModels(r);
    if (!has(DATA.models, model)) {
        var named = printable ? 'The model `' + model + '` does not exist.' : 'The requested model does not exist.';
        var listed = allowed === null ? Object.keys(DATA.models) : allowed;
        sendError(r, 404, named + ' Served models: ' + listed.join(', '), 'model', 'model_not_found');
        return;
    }
    if (allowed !== null && allowed.indexOf(model) < 0) {
        notAllowed(r, 'the model `' + model + '`', 'model');
        return;
    }
    var pool = DATA.models[model];
    r.variables.mx_pool = pool;
    proxyTo(r, pool, '@pool_' + pool);
}

// ---- usage per key (issue 21): js_body_filter of the pools' locations. The answer goes on
// untouched; the token counts of its last "usage" (a whole answer's, or the usage chunk of a
// stream that asked for it; Ollama's prompt_eval_count and eval_count on /api/) are kept in
// $mx_prompt_tokens and $mx_completion_tokens for the metrics line. Each chunk is scanned after
// the tail of the one before, so a count split between two chunks is found. Inside a JSON
// string a quote is escaped, so text an engine generated cannot pass for a count.
var PROMPT_TOKENS = /"(?:prompt_tokens|prompt_eval_count)"\s*:\s*(\d+)/g;
var COMPLETION_TOKENS = /"(?:completion_tokens|eval_count)"\s*:\s*(\d+)/g;
var USAGE_TAIL = 64;

function lastCount(pattern, text) {
    var found = null;
    var match;
    pattern.lastIndex = 0;
    while ((match = pattern.exec(text)) !== null) {
        found = match[1];
    }
    return found;
}

function usage(r, data, flags) {
    r.sendBuffer(data, flags);
    var text = r.variables.mx_usage_tail + data;
    var prompt = lastCount(PROMPT_TOKENS, text);
    var completion = lastCount(COMPLETION_TOKENS, text);
    if (prompt !== null) {
        r.variables.mx_prompt_tokens = prompt;
    }
    if (completion !== null) {
        r.variables.mx_completion_tokens = completion;
    }
    r.variables.mx_usage_tail = text.length > USAGE_TAIL ? text.substring(text.length - USAGE_TAIL) : text;
}

// GET /v1/models: every served model the key may use, OpenAI list shape.
function models(r) {
    var allowed = keyModels(r);
    var ids = Object.keys(DATA.models).filter(function (id) { return allowed === null || allowed.indexOf(id) >= 0; });
    var data = ids.map(function (id) {
        return {id: id, object: 'model', created: 0, owned_by: 'memoryx', pool: DATA.models[id]};
    });
    sendJson(r, 200, {object: 'list', data: data});
}

function memberUrl(kind, member) {
    var host = member.address.indexOf(':') >= 0 ? '[' + member.address + ']' : member.address;
    return 'http://' + host + ':' + member.port + HEALTH_PATHS[kind];
}

function probe(kind, member) {
    return ngx.fetch(memberUrl(kind, member), {max_response_body_size: 4096})
        .then(function (reply) { return reply.status >= 200 && reply.status < 300; })
        .catch(function () { return false; });
}

// GET /ready: 200 when every pool has a live member, else 503. Counts only: no addresses.
function ready(r) {
    var names = Object.keys(DATA.pools);
    var drained = readDrained();
    var checks = names.map(function (name) {
        var pool = DATA.pools[name];
        var live = pool.members.filter(function (m) { return !has(drained, m.name); });
        return Promise.all(live.map(function (m) { return probe(pool.kind, m); }))
            .then(function (results) {
                var up = results.filter(function (ok) { return ok; }).length;
                return {
                    name: name,
                    state: {ready: up > 0, live: up, members: pool.members.length,
                            drained: pool.members.length - live.length}
                };
            });
    });
    Promise.all(checks).then(function (states) {
        var pools = {};
        var allReady = true;
        states.forEach(function (s) {
            pools[s.name] = s.state;
            allReady = allReady && s.state.ready;
        });
        sendJson(r, allReady ? 200 : 503, {status: allReady ? 'ready' : 'not_ready', pools: pools});
    });
}

export default {route: route, pass: pass, models: models, ready: ready, keyName: keyName,
                usage: usage};
