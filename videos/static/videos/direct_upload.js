// The admin's video form sends its video straight to a storage provider, as the API's
// direct uploads do (POST /api/uploads/, then the target's protocol), and then saves
// the form with the upload's id in place of the file: the bytes never pass through
// this server, a lost connection costs one part, and the editor sees how far it got.
//
// Why not Uppy: its S3 multipart plugin speaks one of our three targets; Cloudinary's
// chunks and our own local chunks would still need code of our own beside a vendored
// bundle many times the size of this file. One small script speaks all three.
(function () {
  "use strict";

  var S3_PARALLEL_PARTS = 3;
  var SIGN_PARTS_AT_ONCE = 100; // the most /parts/ signs in one call
  // A start refused with 503 and a short Retry-After (the server busy waiting on its
  // providers for other uploads) is asked again after that long, for at most
  // START_WAIT_SECONDS in all; a longer one is an outage, said at once.
  var START_RETRY_MAX_SECONDS = 10;
  var START_WAIT_SECONDS = 120;

  // -- what the page shows ----------------------------------------------------

  function element(id) {
    return document.getElementById(id);
  }

  function showError(message) {
    var error = element("upload-error");
    error.textContent = message;
    error.hidden = false;
    element("upload-progress").hidden = true;
  }

  // ``sent`` null keeps the bar where it is.
  function showProgress(sent, total, text) {
    var panel = element("upload-progress");
    panel.hidden = false;
    element("upload-error").hidden = true;
    var bar = panel.querySelector("progress");
    if (sent !== null) {
      bar.value = total ? Math.floor((sent / total) * 100) : 0;
    }
    panel.querySelector(".upload-progress-text").textContent = text || "Uploading… " + bar.value + "%";
  }

  function setBusy(form, busy) {
    form.dataset.uploading = busy ? "true" : "";
    Array.prototype.forEach.call(form.querySelectorAll("input[type=submit], button[type=submit]"), function (button) {
      button.disabled = busy;
    });
  }

  // -- talking to this server and to the providers -------------------------

  // A failure of the network itself (no answer at all), as opposed to an answer.
  function NetworkError(message) {
    this.message = message;
  }

  // The upload stopped and can go on: the connection was lost.
  function Paused() {}

  // The target failed twice; the upload moves to the next provider.
  function TargetFailed(reason) {
    this.reason = reason;
  }

  // The target refused a piece (a signature too old, a chunk it did not expect): the
  // upload asks the server what the target holds and goes on from there.
  function OutOfStep(reason) {
    this.reason = reason;
  }

  // Nothing more to try; ``message`` is for the editor.
  function Refused(message) {
    this.message = message;
  }

  // Requests under way. When the browser goes offline they are stopped at once: one
  // whose connection is gone may otherwise wait minutes for an answer that never
  // comes, and the upload pauses only once they have failed.
  var requestsUnderWay = new Set();
  window.addEventListener("offline", function () {
    requestsUnderWay.forEach(function (xhr) {
      xhr.abort();
    });
  });

  // One request with XMLHttpRequest (fetch cannot report upload progress).
  // Resolves with the request whatever its status; rejects with NetworkError.
  function request(method, url, options) {
    options = options || {};
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      requestsUnderWay.add(xhr);
      xhr.addEventListener("loadend", function () {
        requestsUnderWay.delete(xhr);
      });
      xhr.open(method, url);
      Object.keys(options.headers || {}).forEach(function (name) {
        xhr.setRequestHeader(name, options.headers[name]);
      });
      if (options.onProgress) {
        xhr.upload.addEventListener("progress", function (event) {
          options.onProgress(event.loaded);
        });
      }
      xhr.addEventListener("load", function () {
        resolve(xhr);
      });
      xhr.addEventListener("error", function () {
        reject(new NetworkError("no answer from " + new URL(url, window.location.href).host));
      });
      xhr.addEventListener("abort", function () {
        reject(new NetworkError("the request was stopped"));
      });
      xhr.send(options.body === undefined ? null : options.body);
    });
  }

  function json(xhr) {
    try {
      return JSON.parse(xhr.responseText);
    } catch (error) {
      return {};
    }
  }

  // What an error answer of this server says, in its own words.
  function detailOf(xhr) {
    var body = json(xhr);
    if (typeof body.detail === "string") {
      return body.detail;
    }
    var messages = [];
    Object.keys(body).forEach(function (field) {
      messages = messages.concat(body[field]);
    });
    return messages.length ? messages.join(" ") : "the server answered HTTP " + xhr.status;
  }

  function Uploads(apiUrl, csrfToken) {
    this.apiUrl = apiUrl;
    this.csrfToken = csrfToken;
  }

  // A call of /api/uploads/ with the editor's session; rejects with NetworkError.
  Uploads.prototype.call = function (method, path, body) {
    return request(method, this.apiUrl + path, {
      headers: { "Content-Type": "application/json", "X-CSRFToken": this.csrfToken },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };

  // -- the upload of one file -------------------------------------------------

  function DirectUpload(file, uploads, onProgress) {
    this.file = file;
    this.uploads = uploads;
    this.onProgress = onProgress;
    this.session = null;
    this.held = null; // what the target holds already, after a pause: {bytes, parts}
    this.resumed = null; // set by resume(): the paused upload's promise goes on
  }

  DirectUpload.prototype.progress = function (sent) {
    this.onProgress(Math.min(sent, this.file.size), this.file.size);
  };

  // Sends the file; resolves with {id, parts, public_id} for the form, or rejects
  // with Refused (a message for the editor).
  DirectUpload.prototype.run = async function () {
    var started = await this.start();
    if (started.status !== 201) {
      throw new Refused(startRefusal(started));
    }
    this.session = json(started);
    var upload = this;
    var recover = null; // what to do before sending again
    var lastRefusal = null;
    for (;;) {
      try {
        if (recover) {
          var step = recover;
          recover = null;
          await step();
        }
        var report = await this.send();
        report.id = this.session.id;
        return report;
      } catch (error) {
        if (error instanceof Paused) {
          recover = this.waitUntilResumed.bind(this);
        } else if (error instanceof OutOfStep && lastRefusal !== error.reason) {
          lastRefusal = error.reason; // the same refusal twice: the target is at fault
          recover = this.refresh.bind(this);
        } else if (error instanceof TargetFailed || error instanceof OutOfStep) {
          recover = function () {
            return upload.failOver(error.reason);
          };
        } else {
          throw error;
        }
      }
    }
  };

  // One call of this server; a lost connection pauses the upload until it is back.
  // POST /api/uploads/, asked again while the server says it is briefly busy.
  DirectUpload.prototype.start = async function () {
    var waited = 0;
    for (;;) {
      var answer = await this.ask(function (uploads, file) {
        var type = file.type || "application/octet-stream";
        return uploads.call("POST", "", { filename: file.name, size: file.size, content_type: type });
      });
      var retryAfter = answer.getResponseHeader("Retry-After");
      var wait = retryAfter ? Number(retryAfter) : NaN;
      if (answer.status !== 503 || !(wait >= 0) || wait > START_RETRY_MAX_SECONDS || waited + wait > START_WAIT_SECONDS) {
        return answer;
      }
      // A little more than asked, so that editors refused together do not come back together.
      wait += Math.random() / 2;
      await new Promise(function (resolve) {
        setTimeout(resolve, wait * 1000);
      });
      waited += wait;
    }
  };

  DirectUpload.prototype.ask = async function (call) {
    for (;;) {
      try {
        return await call(this.uploads, this.file);
      } catch (error) {
        if (!(error instanceof NetworkError)) {
          throw error;
        }
        await this.waitUntilResumed();
      }
    }
  };

  DirectUpload.prototype.failOver = async function (reason) {
    var id = this.session.id;
    var answer = await this.ask(function (uploads) {
      return uploads.call("POST", id + "/fail/", { reason: reason });
    });
    if (answer.status !== 200) {
      throw new Refused(
        "The video could not be uploaded: every storage provider failed (" + detailOf(answer) + "). " +
          "Nothing was saved; your changes are still here: please try again in a minute."
      );
    }
    this.session = json(answer);
    this.held = null;
  };

  // Paused: waits for the connection (the browser's "online") or the Resume button,
  // then asks the server what the target holds, so that only the rest is sent.
  DirectUpload.prototype.waitUntilResumed = async function () {
    var upload = this;
    await new Promise(function (resolve) {
      upload.resumed = resolve;
      upload.onProgress(null, upload.file.size, "paused");
    });
    upload.resumed = null;
    if (this.session) {
      await this.refresh();
    }
  };

  // The session afresh (a new signature) with what its target holds already.
  DirectUpload.prototype.refresh = async function () {
    var id = this.session.id;
    var answer = await this.ask(function (uploads) {
      return uploads.call("GET", id + "/");
    });
    if (answer.status >= 500) {
      throw new TargetFailed("asking what the target holds: " + detailOf(answer));
    }
    if (answer.status !== 200) {
      throw new Refused("The upload cannot go on: " + detailOf(answer) + " Choose the file again.");
    }
    this.session = json(answer);
    this.held = { bytes: this.session.received_bytes || 0, parts: this.session.parts || [] };
  };

  DirectUpload.prototype.resume = function () {
    if (this.resumed) {
      this.resumed();
    }
  };

  DirectUpload.prototype.send = function () {
    var target = this.session.target;
    if (target.method === "s3-multipart") {
      return this.sendParts(target);
    }
    if (target.method === "cloudinary-chunked" || target.method === "local-chunked") {
      return this.sendChunks(target);
    }
    return Promise.reject(new Refused("This page cannot upload to " + target.method + "; reload it."));
  };

  // One piece (an S3 part or a chunk): one quick retry, then the target has failed.
  // Offline, the upload pauses instead.
  async function withOneRetry(what, attempt) {
    var reason;
    for (var tries = 0; tries < 2; tries++) {
      if (!navigator.onLine) {
        throw new Paused();
      }
      try {
        var xhr = await attempt();
      } catch (error) {
        if (!(error instanceof NetworkError)) {
          throw error;
        }
        if (!navigator.onLine) {
          throw new Paused();
        }
        reason = what + ": " + error.message;
        continue;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        return xhr;
      }
      reason = what + ": HTTP " + xhr.status;
      if (xhr.status < 500) {
        throw new OutOfStep(reason);
      }
    }
    throw new TargetFailed(reason);
  }

  // Cloudinary's and this server's chunks, in order from what the target holds.
  DirectUpload.prototype.sendChunks = async function (target) {
    var file = this.file;
    var upload = this;
    // Cloudinary cannot say what it holds before the end (received_bytes null): all again.
    var offset = this.held && target.method === "local-chunked" ? this.held.bytes : 0;
    var answer = null;
    while (offset < file.size) {
      var end = Math.min(offset + target.chunk_size, file.size);
      var chunk = file.slice(offset, end);
      var headers = { "Content-Range": "bytes " + offset + "-" + (end - 1) + "/" + file.size };
      var body = chunk;
      if (target.method === "cloudinary-chunked") {
        headers["X-Unique-Upload-Id"] = target.unique_upload_id;
        body = new FormData();
        Object.keys(target.fields).forEach(function (name) {
          body.append(name, target.fields[name]);
        });
        body.append("file", chunk, file.name);
      } else {
        headers["X-CSRFToken"] = this.uploads.csrfToken;
      }
      var start = offset;
      var xhr = await withOneRetry("chunk at byte " + start, function () {
        return request(target.method === "cloudinary-chunked" ? "POST" : "PUT", target.url, {
          headers: headers,
          body: body,
          onProgress: function (loaded) {
            upload.progress(start + Math.min(loaded, end - start));
          },
        });
      });
      answer = json(xhr);
      offset = end;
      this.progress(offset);
    }
    return target.method === "cloudinary-chunked" ? { public_id: answer.public_id } : {};
  };

  // S3: the parts the target lacks, a few at a time, each to its presigned URL.
  DirectUpload.prototype.sendParts = async function (target) {
    var upload = this;
    var file = this.file;
    var urls = {};
    target.parts.forEach(function (part) {
      urls[part.number] = part.url;
    });
    var done = {};
    var sentOf = {};
    ((this.held && this.held.parts) || []).forEach(function (part) {
      done[part.number] = part.etag;
      sentOf[part.number] = part.size;
    });
    var missing = [];
    for (var number = 1; number <= target.part_count; number++) {
      if (!(number in done)) {
        missing.push(number);
      }
    }
    function report() {
      var sent = 0;
      Object.keys(sentOf).forEach(function (number) {
        sent += sentOf[number];
      });
      upload.progress(sent);
    }
    report();

    var id = this.session.id;
    async function urlOf(number) {
      if (!(number in urls)) {
        var batch = missing.filter(function (other) {
          return other >= number && !(other in urls);
        }).slice(0, SIGN_PARTS_AT_ONCE);
        var signed = await upload.uploads.call("POST", id + "/parts/", { numbers: batch });
        if (signed.status !== 200) {
          throw new Refused("The upload cannot go on: " + detailOf(signed));
        }
        json(signed).parts.forEach(function (part) {
          urls[part.number] = part.url;
        });
      }
      return urls[number];
    }

    var queue = missing.slice();
    async function worker() {
      while (queue.length) {
        var number = queue.shift();
        var first = (number - 1) * target.part_size;
        var last = Math.min(number * target.part_size, file.size);
        var url;
        try {
          url = await urlOf(number);
        } catch (error) {
          if (error instanceof NetworkError) {
            throw navigator.onLine ? new TargetFailed("signing part " + number + ": " + error.message) : new Paused();
          }
          throw error;
        }
        var xhr = await withOneRetry("part " + number, function () {
          return request("PUT", url, {
            body: file.slice(first, last),
            onProgress: function (loaded) {
              sentOf[number] = Math.min(loaded, last - first);
              report();
            },
          });
        });
        var etag = xhr.getResponseHeader("ETag");
        if (!etag) {
          throw new Refused(
            "The storage provider did not show this page the part's ETag: its CORS configuration must expose " +
              "the ETag header (see docs/s3.md)."
          );
        }
        done[number] = etag;
        sentOf[number] = last - first;
        report();
      }
    }
    var workers = [];
    for (var i = 0; i < Math.min(S3_PARALLEL_PARTS, missing.length); i++) {
      workers.push(worker());
    }
    try {
      await Promise.all(workers);
    } finally {
      queue.length = 0; // one worker failed: the others take no new part
    }
    var parts = [];
    for (var part = 1; part <= target.part_count; part++) {
      parts.push({ number: part, etag: done[part] });
    }
    return { parts: parts };
  };

  function startRefusal(answer) {
    if (answer.status === 503) {
      return (
        "The video could not be uploaded: every storage provider failed (" + detailOf(answer) + "). " +
        "Nothing was saved; your changes are still here: please try again in a minute."
      );
    }
    return detailOf(answer);
  }

  // -- the form ---------------------------------------------------------------

  // Posts the form with XMLHttpRequest: a thumbnail over the small-body limit needs its
  // CSRF token in a header, which a plain form post cannot send.
  function postForm(form, data, csrfToken) {
    return request("POST", form.action || window.location.href, {
      // The server then answers a redirect with its address, which this page follows
      // itself: following it inside the request would use up Django's messages.
      headers: { "X-CSRFToken": csrfToken, "X-Requested-With": "XMLHttpRequest" },
      body: data,
    }).then(function (xhr) {
      if (xhr.status >= 200 && xhr.status < 300) {
        if ((xhr.getResponseHeader("Content-Type") || "").indexOf("application/json") === 0) {
          window.location.assign(json(xhr).location);
        } else {
          // The form again, with what Django found wrong in it.
          document.open();
          document.write(xhr.responseText);
          document.close();
        }
        return;
      }
      var plain = (xhr.getResponseHeader("Content-Type") || "").indexOf("text/plain") === 0;
      if (plain && xhr.responseText) {
        throw new Refused(xhr.responseText); // Django's own words (a 413 names its limit)
      }
      if (xhr.status === 408) {
        throw new Refused("The upload was too slow and the server stopped it. Nothing was saved; please try again on a faster connection.");
      }
      throw new Refused("Saving failed (HTTP " + xhr.status + "). Nothing was saved; please try again.");
    }, function () {
      throw new Refused("Saving failed: the connection to the server was lost. Nothing was saved; please try again.");
    });
  }

  function formData(form, submitter) {
    var data = new FormData(form);
    if (submitter && submitter.name) {
      data.append(submitter.name, submitter.value); // which Save button: disabled ones are not sent
    }
    return data;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = element("video_form");
    var panel = element("upload-progress");
    if (!form || !panel || !window.FormData || !window.Promise) {
      return; // the form posts its file itself
    }
    var videoInput = form.querySelector("input[type=file][name=file]");
    var csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    var uploads = new Uploads(panel.dataset.uploadsUrl, csrfToken);
    var resumeButton = element("upload-resume");
    var current = null;

    function onProgress(sent, total, state) {
      if (state === "paused") {
        resumeButton.hidden = false;
        showProgress(0, 1, "The connection was lost: the upload is paused and goes on when it is back.");
        return;
      }
      resumeButton.hidden = true;
      showProgress(sent, total);
    }

    function resume() {
      if (current) {
        current.resume();
      }
    }
    window.addEventListener("online", resume);
    resumeButton.addEventListener("click", resume);

    form.addEventListener("submit", async function (event) {
      if (form.dataset.uploading) {
        event.preventDefault(); // one upload at a time
        return;
      }
      var files = Array.prototype.slice.call(form.querySelectorAll("input[type=file]")).filter(function (input) {
        return input.files && input.files.length > 0;
      });
      if (files.length === 0) {
        return; // nothing large: the form posts itself
      }
      event.preventDefault();
      var limitMB = Number(panel.dataset.maxUploadMb);
      var tooLarge = files.some(function (input) {
        return input.files[0].size > limitMB * 1024 * 1024;
      });
      if (tooLarge) {
        showError("The file is larger than the limit of " + limitMB + " MB. Nothing was sent.");
        return;
      }
      var submitter = event.submitter;
      setBusy(form, true);
      try {
        if (videoInput && videoInput.files.length) {
          current = new DirectUpload(videoInput.files[0], uploads, onProgress);
          var report = await current.run();
          videoInput.value = ""; // sent: saving again sends the form alone
          showProgress(1, 1, "Uploaded; saving…");
          form.elements.upload_session.value = report.id;
          form.elements.upload_report.value = JSON.stringify({ parts: report.parts, public_id: report.public_id });
        } else {
          showProgress(0, 1, "Saving…");
        }
        var data = formData(form, submitter);
        data.delete("file");
        await postForm(form, data, csrfToken);
      } catch (error) {
        setBusy(form, false);
        showError(error instanceof Refused ? error.message : "The upload failed: " + error + ". Nothing was saved; please try again.");
      } finally {
        current = null;
      }
    });
  });
})();
