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
  var stylesheet = function () {
    var link = document.querySelector('link[rel=stylesheet][href*="style.css"]');
    var own = document.querySelector('script[src*="/editor.js"]');  // (the admin's pages)
    return link ? link.href : own ? own.src.replace(/\/editor\.js(\?.*)?$/, "/style.css") : "";
  };
  var megabytes = function (size) { return (size / 1024 / 1024).toPrecision(3).replace(/\.?0+$/, "") + " MB"; };
  // what it says, in the page's language (notes.i18n.editor_messages)
  var messages = JSON.parse(meta("editor-messages") || "{}");
  var say = function (key, values) {
    return (messages[key] || key).replace(/%\((\w+)\)s/g, function (all, name) {
      return values && name in values ? values[name] : all;
    });
  };
  var tooLarge = say("tooLarge", {size: megabytes(maxImage)});
  var askAlt = say("askAlt");
  var askAgain = say("askAgain");

  var config = {
    customConfig: "",  // everything is set here: no config.js to fetch
    language: meta("editor-language") || "en",  // CKEditor's own, from its package
    versionCheck: false,
    removePlugins: "scayt,wsc,exportpdf,easyimage,cloudservices,embed,embedsemantic,autoembed,mathjax,iframe,flash,forms",
    removeButtons: "Underline,Subscript,Superscript",
    removeDialogTabs: "image:advanced;link:advanced",
    disableNativeSpellChecker: false,
    height: 360,
    // the text as the page shows it: the site's stylesheet (its light and dark colours) in the
    // editing area, whose body is styled as a note's body
    contentsCss: [stylesheet()],
    bodyClass: "body",
    // photos pasted or dropped: every format the site takes (HEIC is converted to JPEG)
    uploadImage_supportedTypes: /image\/(jpeg|png|gif|webp|heic|heif)/,
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
      say("altRequired"));
  });

  var setUp = function (editor, form) {
    var lang = editor.lang.filetools;
    if (maxImage) { lang.httpError413 = tooLarge; }
    lang.httpError415 = say("onlyImages");
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
        // asked again once if left blank (a note with an undescribed image is not saved)
        var alt = window.prompt(askAlt, "");
        if (alt !== null && !alt.trim()) { alt = window.prompt(askAgain, ""); }
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

  // The writer's text is kept in this browser as they type (localStorage), and offered back
  // when this editor is opened again without it (a crash, a closed tab, a save that did not
  // go through). A successful save drops it (site.js, on the next page).
  var keepDraft = function (editor, form) {
    var path = form.getAttribute("data-draft-key");
    var store = null;
    try { store = window.localStorage; } catch (e) { store = null; }
    if (!path || !store) { return; }
    var key = "notes-draft:" + (form.getAttribute("data-user") || "") + ":" + path;
    var status = document.getElementById("draft-status");
    var fields = function () {
      return {title: form.elements.title.value, body: editor.getData(),
              tags: form.elements.tags.value, published: form.elements.published.checked};
    };
    var same = function (a, b) { return a.title === b.title && a.body === b.body && a.tags === b.tags; };
    var read = function () {
      try { return JSON.parse(store.getItem(key) || "null"); } catch (e) { return null; }
    };
    if (/[?&]theirs=1(&|$)/.test(window.location.search)) { store.removeItem(key); }
    var initial = fields();
    var offered = null;
    var draft = read();
    if (draft && same(draft, initial)) {
      store.removeItem(key);
    } else if (draft && typeof draft.body === "string") {
      offered = document.createElement("div");
      offered.className = "draft-offer";
      offered.setAttribute("role", "alert");
      var when = draft.at ? new Date(draft.at).toLocaleString(document.documentElement.lang)
          : say("earlier");
      var text = document.createElement("p");
      text.textContent = say("draftOffer", {when: when}) + " ";
      text.insertAdjacentHTML("beforeend",
          "<button type=\"button\" data-draft=\"restore\"></button> " +
          "<button type=\"button\" class=\"link\" data-draft=\"discard\"></button>");
      text.querySelector("[data-draft=restore]").textContent = say("restore");
      text.querySelector("[data-draft=discard]").textContent = say("discard");
      offered.appendChild(text);
      form.parentNode.insertBefore(offered, form);
      offered.addEventListener("click", function (event) {
        var choice = event.target.getAttribute && event.target.getAttribute("data-draft");
        if (!choice) { return; }
        if (choice === "restore") {
          form.elements.title.value = draft.title || "";
          form.elements.tags.value = draft.tags || "";
          form.elements.published.checked = !!draft.published;
          editor.setData(draft.body);
        } else {
          store.removeItem(key);
        }
        offered.remove();
        offered = null;
      });
    }
    var timer = null;
    var save = function () {
      timer = null;
      if (offered) { return; }  // the earlier draft waits for a choice: it is not overwritten
      var now = fields();
      if (same(now, initial) && !read()) { return; }
      now.at = new Date().toISOString();
      try {
        store.setItem(key, JSON.stringify(now));
        if (status) { status.textContent = say("draftKept", {time: new Date().toLocaleTimeString(document.documentElement.lang)}); }
      } catch (e) { /* storage full or refused: the server copy is what counts */ }
    };
    var later = function () { if (!timer) { timer = window.setTimeout(save, 800); } };
    editor.on("change", later);
    editor.on("key", later);
    form.addEventListener("input", later);
    form.addEventListener("submit", save);
    window.addEventListener("pagehide", save);  // the last keystrokes, as the tab goes
  };

  // While the writer is active, the editor asks the server now and then, which keeps the
  // session alive (NOTES_SESSION_IDLE counts from the last request); if it has ended anyway,
  // the writer is told before pressing Save.
  var keepAlive = function (editor, form) {
    var idle = parseInt(meta("session-idle") || "0", 10);
    var url = meta("session-alive-url");
    if (!idle || !url || !window.fetch) { return; }
    var active = false;
    var mark = function () { active = true; };
    editor.on("change", mark);
    editor.on("key", mark);
    form.addEventListener("input", mark);
    var every = Math.max(1, Math.min(300, Math.floor(idle / 3))) * 1000;
    window.setInterval(function () {
      if (!active) { return; }
      active = false;
      window.fetch(url, {credentials: "same-origin", redirect: "manual", cache: "no-store"})
        .then(function (response) {
          if (response.status === 204) { return; }
          var status = document.getElementById("draft-status");
          if (status) {
            status.textContent = say("sessionEnded");
          }
        }).catch(function () { /* offline for a moment: try again next time */ });
    }, every);
  };

  // Markdown is written in the plain textarea; choosing another format shows the editor again
  // in it, unsaved (the form's Preview, which converts the text)
  document.querySelectorAll("select[name=format]").forEach(function (select) {
    select.addEventListener("change", function () {
      var preview = select.form && select.form.querySelector("button[name=preview]");
      if (!preview) { return; }
      if (select.form.requestSubmit) { select.form.requestSubmit(preview); } else { preview.click(); }
    });
  });

  document.querySelectorAll("textarea[name=body]").forEach(function (area) {
    var shown = area.form && area.form.elements.shown_format;
    if (shown && shown.value === "markdown") { return; }
    if (!area.id) { area.id = "body"; }
    if (CKEDITOR.instances[area.id]) { return; }
    var editor = CKEDITOR.replace(area, config);
    editor.on("instanceReady", function () {
      setUp(editor, area.form);
      if (area.form && area.form.hasAttribute("data-draft-key")) {
        keepDraft(editor, area.form);
        keepAlive(editor, area.form);
      }
    });
  });
})();
