// Interop with a TradSys Python peer (tradsys.p2p), both ways, through the daemon's signaling: this
// browser peer (id `me`) connects to the Python peer `python` with the page's `serialization`, sends
// a signal and waits for its echo; and answers the connection the Python peer makes to it, acking
// what it got. In `binary` the messages carry bytes and a string long enough to be chunked.
// Runs only when the page has a `python` parameter; the outcome goes to window.result.
(function () {
  const params = new URLSearchParams(location.search);
  if (!params.get("python")) return;
  const serialization = params.get("serialization") || "binary";
  const binary = serialization === "binary";
  const peer = new Peer(params.get("me"), {
    host: params.get("host"), port: Number(params.get("port")), path: "/", key: params.get("key"),
    secure: false, debug: 1, config: { iceServers: [] },
  });
  const log = [];
  const result = { ok: false, log };
  let acked = 0;
  const finish = () => { if (result.echo && acked > 0) { result.ok = true; window.result = result; } };
  setTimeout(() => { if (!window.result) { result.error = "timeout"; window.result = result; } },
             Number(params.get("timeout") || 30000));
  peer.on("error", (err) => { result.error = `${err.type}: ${err.message}`; window.result = result; });

  peer.on("connection", (conn) => {
    log.push(`connection from ${conn.peer} (${conn.serialization}, reliable ${conn.reliable})`);
    conn.on("data", (data) => {
      const ack = { ack: true, symbol: data.symbol, padLength: (data.pad || "").length };
      if (binary) ack.blob = Array.from(new Uint8Array(data.blob));
      conn.send(ack);
      acked += 1;
      finish();
    });
  });

  peer.on("open", (id) => {
    log.push(`open as ${id}`);
    const signal = { symbol: "BTC-USD", side: "buy", strength: 0.7, sender: id, time: Date.now() };
    if (binary) Object.assign(signal, { blob: new Uint8Array([0, 1, 2, 255]), pad: "x".repeat(20000) });
    const conn = peer.connect(params.get("python"), { serialization, reliable: true });
    conn.on("open", () => { log.push("connection to python open"); conn.send(signal); });
    conn.on("data", (reply) => {
      const echo = reply.echo;
      result.echo = { symbol: echo.symbol, side: echo.side, strength: echo.strength, sender: echo.sender,
                      padLength: (echo.pad || "").length };
      if (binary) result.echo.blob = Array.from(new Uint8Array(echo.blob));
      finish();
    });
  });
})();
