// Sends the video admin form with XMLHttpRequest when it carries a file, so that an
// editor uploading hundreds of megabytes sees how far the upload has got, and a
// readable message when it fails, instead of a frozen page.
(function () {
  "use strict";

  function showError(message) {
    var error = document.getElementById("upload-error");
    error.textContent = message;
    error.hidden = false;
    document.getElementById("upload-progress").hidden = true;
  }

  function chosenFiles(form) {
    var files = [];
    Array.prototype.forEach.call(form.querySelectorAll("input[type=file]"), function (input) {
      Array.prototype.push.apply(files, input.files || []);
    });
    return files;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("video_form");
    if (!form || !window.FormData) {
      return;
    }
    form.addEventListener("submit", function (event) {
      var files = chosenFiles(form);
      if (files.length === 0) {
        return;
      }
      event.preventDefault();
      var limitMB = Number(document.getElementById("upload-progress").dataset.maxUploadMb);
      if (files.some(function (file) { return file.size > limitMB * 1024 * 1024; })) {
        showError("The file is larger than the limit of " + limitMB + " MB. Nothing was sent.");
        return;
      }
      var data = new FormData(form);
      if (event.submitter && event.submitter.name) {
        data.append(event.submitter.name, event.submitter.value);
      }
      var panel = document.getElementById("upload-progress");
      var bar = panel.querySelector("progress");
      var text = panel.querySelector(".upload-progress-text");
      document.getElementById("upload-error").hidden = true;
      panel.hidden = false;

      var request = new XMLHttpRequest();
      request.open("POST", form.action || window.location.href);
      // The server then answers a redirect with its address, which this page follows
      // itself: following it inside the request would use up Django's messages.
      request.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      // The server checks a large upload's CSRF token from this header before it reads the body.
      var token = form.querySelector("input[name=csrfmiddlewaretoken]");
      if (token) {
        request.setRequestHeader("X-CSRFToken", token.value);
      }
      request.upload.addEventListener("progress", function (progress) {
        if (progress.lengthComputable) {
          var percent = Math.round((progress.loaded / progress.total) * 100);
          bar.value = percent;
          text.textContent = "Uploading… " + percent + "%";
        }
      });
      request.upload.addEventListener("load", function () {
        bar.value = 100;
        text.textContent = "Stored the upload, saving…";
      });
      request.addEventListener("load", function () {
        if (request.status >= 200 && request.status < 300) {
          // Django answered with where to go next, or with the form and its errors.
          if ((request.getResponseHeader("Content-Type") || "").indexOf("application/json") === 0) {
            window.location.assign(JSON.parse(request.responseText).location);
          } else {
            document.open();
            document.write(request.responseText);
            document.close();
          }
        } else if (request.status === 413) {
          // Django's own words name its limit; a proxy's page would not be readable here.
          var plain = (request.getResponseHeader("Content-Type") || "").indexOf("text/plain") === 0;
          showError(plain && request.responseText ? request.responseText : "The file is larger than the server accepts.");
        } else if (request.status === 408) {
          showError("The upload was too slow and the server stopped it. Nothing was saved; please try again on a faster connection.");
        } else {
          showError("The upload failed (HTTP " + request.status + "). Nothing was saved; please try again.");
        }
      });
      request.addEventListener("error", function () {
        showError("The upload failed: the connection to the server was lost. Nothing was saved; please try again.");
      });
      request.send(data);
    });
  });
})();
