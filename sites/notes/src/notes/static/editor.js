// CKEditor 4 for every textarea named "body", set up here and only here: local copy, no remote
// plugins, what it allows comes from the site's one declaration (services.CONTENT, sent in the
// editor-config meta tag), uploads with CSRF and a stated size limit, alt text asked for.
(function () {
  "use strict";
  if (!window.CKEDITOR) { return; }
  var meta = function (name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  };
  // no second initialisation by class name (textarea.ckeditor) or of contenteditable elements
  CKEDITOR.replaceClass = null;
  CKEDITOR.disableAutoInline = true;
  // the files CKEditor loads itself (skin, language, plugins) carry the asset version too
  var script = document.querySelector('script[src*="ckeditor/ckeditor.js"]');
  var version = script && /[?&]v=([^&]+)/.exec(script.getAttribute("src"));
  if (version) { CKEDITOR.timestamp = version[1]; }

  var token = meta("csrf-token");
  var uploadUrl = meta("upload-url");
  var settings = JSON.parse(meta("editor-config") || "{}");
  var maxImage = parseInt(meta("max-image") || "0", 10);
  var megabytes = function (size) { return (size / 1024 / 1024).toPrecision(3).replace(/\.?0+$/, "") + " MB"; };
  var tooLarge = "This image is too large: images can be at most " + megabytes(maxImage) +
      ". Make it smaller (or save it as JPEG) and insert it again.";
  var askAlt = "Describe this image for people who cannot see it (alt text):";

  var config = {
    customConfig: "",  // everything is set here: no config.js to fetch
    versionCheck: false,
    removePlugins: "scayt,wsc,exportpdf,easyimage,cloudservices,embed,embedsemantic,autoembed,mathjax,iframe,flash,forms",
    removeButtons: "Underline,Subscript,Superscript",
    removeDialogTabs: "image:advanced;link:advanced",
    disableNativeSpellChecker: false,
    height: 360,
    allowedContent: settings.allowedContent || true,
    // the upload widget's own markers while a pasted image uploads (never in saved content)
    extraAllowedContent: "img[data-cke-upload-id,data-widget]",
    format_tags: settings.format_tags || "p;h1;h2;h3;pre"
  };
  if (settings.stylesSet) {
    CKEDITOR.stylesSet.add("notes", settings.stylesSet);
    config.stylesSet = "notes";
  }
  if (uploadUrl) {
    config.extraPlugins = "uploadimage";
    config.uploadUrl = uploadUrl;
    config.filebrowserImageUploadUrl = uploadUrl;
  }

  // the image dialog does not close without alt text
  CKEDITOR.on("dialogDefinition", function (event) {
    if (event.data.name !== "image") { return; }
    var alt = event.data.definition.getContents("info").get("txtAlt");
    alt.validate = CKEDITOR.dialog.validate.notEmpty(
      "Please describe the image (alt text) for people who cannot see it.");
  });

  var setUp = function (editor, form) {
    var lang = editor.lang.filetools;
    if (maxImage) { lang.httpError413 = tooLarge; }
    lang.httpError415 = "Only PNG, JPEG, GIF and WebP images can be uploaded.";
    editor.on("fileUploadRequest", function (evt) {
      var loader = evt.data.fileLoader;
      if (maxImage && loader.file && loader.file.size > maxImage) {
        loader.message = tooLarge;  // said before sending megabytes for nothing
        loader.changeStatus("error");
        evt.cancel();
        return;
      }
      loader.xhr.setRequestHeader("X-CSRFToken", token);
    });
    // a pasted or dropped image: ask for its alt text once it is uploaded
    var widget = editor.widgets && editor.widgets.registered.uploadimage;
    if (widget && !widget.notesAlt) {
      var uploaded = widget.onUploaded;
      widget.notesAlt = true;
      widget.onUploaded = function (upload) {
        uploaded.call(this, upload);
        var alt = window.prompt(askAlt, "");
        editor.editable().find("img").toArray().forEach(function (img) {
          var src = img.data("cke-saved-src") || img.getAttribute("src");
          if (src === upload.url && !img.getAttribute("alt")) { img.setAttribute("alt", alt || ""); }
        });
        editor.fire("change");
      };
    }
    // leaving with unsaved changes asks first
    if (form) {
      var dirty = false;
      var mark = function () { dirty = true; };
      editor.on("change", mark);
      form.addEventListener("input", mark);
      form.addEventListener("submit", function () { dirty = false; });
      window.addEventListener("beforeunload", function (event) {
        if (!dirty) { return; }
        event.preventDefault();
        event.returnValue = "";
      });
    }
  };

  document.querySelectorAll("textarea[name=body]").forEach(function (area) {
    if (!area.id) { area.id = "body"; }
    if (CKEDITOR.instances[area.id]) { return; }
    var editor = CKEDITOR.replace(area, config);
    editor.on("instanceReady", function () { setUp(editor, area.form); });
  });
})();
