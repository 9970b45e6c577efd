// A demo backend process: answers every request with its name and pid, like a Socket.IO
// process would be identified in a log. Usage: node backend.js NAME PORT
"use strict";
const http = require("http");
const [name, port] = process.argv.slice(2);
http
  .createServer((req, res) => {
    const body = JSON.stringify({ backend: name, pid: process.pid, url: req.url }) + "\n";
    res.writeHead(200, { "Content-Type": "application/json", "X-Backend": name });
    res.end(body);
  })
  .listen(Number(port), "127.0.0.1");
