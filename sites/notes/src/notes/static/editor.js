// CKEditor 4 for every textarea named "body": local copy, no remote plugins, uploads with CSRF.
(function () {
  "use strict";
  if (!window.CKEDITOR) { return; }
  var meta = function (name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  };
  var token = meta("csrf-token");
  var uploadUrl = meta("upload-url");
  CKEDITOR.config.versionCheck = false;
  CKEDITOR.config.removePlugins = "scayt,wsc,exportpdf,easyimage,cloudservices,embed,embedsemantic,autoembed,mathjax,iframe,flash,forms";
  CKEDITOR.config.disableNativeSpellChecker = false;
  CKEDITOR.config.height = 360;
  if (uploadUrl) {
    CKEDITOR.config.extraPlugins = "uploadimage";
    CKEDITOR.config.uploadUrl = uploadUrl;
    CKEDITOR.config.filebrowserImageUploadUrl = uploadUrl;
  }
  CKEDITOR.on("instanceReady", function (event) {
    event.editor.on("fileUploadRequest", function (evt) {
      evt.data.fileLoader.xhr.setRequestHeader("X-CSRFToken", token);
    });
  });
  document.querySelectorAll("textarea[name=body]").forEach(function (area) {
    if (!area.id) { area.id = "body"; }
    CKEDITOR.replace(area.id);
  });
})();
