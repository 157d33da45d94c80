// sd-webui-fooocus: style picker behaviour (filter as you type, selected styles first, hover preview).
//
// Hover: a style with a preview image shows the image; any other style shows a text card with its
// positive and negative templates ({prompt} highlighted), from the data the server puts into
// "<prefix>_styles_cards" (see style_picker.cards_html). The card never depends on where images come
// from: it is shown whenever no image URL is known for the name.
//
// The picker is a gradio CheckboxGroup with the class "fooocus-styles-group" and the elem_id
// "<prefix>_styles"; its search box is "<prefix>_styles_search". Style names come from user files, so
// they are only ever written into the page through textContent / properties, never as HTML.
// Reordering uses the CSS `order` property: gradio owns the DOM nodes and must not see them moved.

(function () {
    "use strict";

    var GROUP_CLASS = "fooocus-styles-group";
    var PICKER_CLASS = "fooocus-styles-picker"; // the picker's column (style_picker.PICKER_CLASS)
    var HIDDEN_CLASS = "fooocus-style-hidden";
    var SELECTED_CLASS = "fooocus-style-selected";
    // The page's own preview list, behind the UI's login (gradio's), not the API's: with --api-auth the
    // page holds no API credentials, and the API's 401 would make the browser ask for a password.
    var PREVIEWS_URL = "fooocus/ui/v1/styles/previews";
    var pickers = new Map(); // group element -> picker state
    var previews = null; // Map name -> absolute preview URL
    var previewsPromise = null;

    function root() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function labelsOf(group) {
        return Array.prototype.filter.call(group.querySelectorAll("label"), function (label) {
            return label.querySelector('input[type="checkbox"]') !== null;
        });
    }

    function nameOf(label) {
        var span = label.querySelector("span");
        return (span ? span.textContent : label.textContent || "").trim();
    }

    function isChecked(label) {
        var input = label.querySelector('input[type="checkbox"]');
        return input !== null && input.checked;
    }

    function queryWords(picker) {
        var box = picker.searchBox();
        var text = box ? box.value || "" : "";
        return text.toLowerCase().split(/\s+/).filter(function (word) {
            return word.length > 0;
        });
    }

    function setClass(element, name, on) {
        // Touch the class attribute only on a real change, so our own MutationObserver stays quiet.
        if (element.classList.contains(name) !== on) {
            element.classList.toggle(name, on);
        }
    }

    // The value's own order, sent by the server with the count (see `count_html`); null if absent.
    function serverOrder(picker) {
        var count = picker.countBox();
        var carrier = count ? count.querySelector("[data-order]") : null;
        if (carrier === null) {
            return null;
        }
        try {
            var names = JSON.parse(carrier.getAttribute("data-order") || "[]");
            return Array.isArray(names) ? names.filter(function (name) {
                return typeof name === "string";
            }) : null;
        } catch (error) {
            return null;
        }
    }

    // The selection order: the value's order as the server last reported it, then clicks not yet
    // reported, then names checked by other means in page order.
    function reconcileSelection(picker, labels) {
        var checked = labels.filter(isChecked).map(nameOf);
        var kept = [];
        (serverOrder(picker) || []).concat(picker.selection).forEach(function (name) {
            if (checked.indexOf(name) !== -1 && kept.indexOf(name) === -1) {
                kept.push(name);
            }
        });
        checked.forEach(function (name) {
            if (kept.indexOf(name) === -1) {
                kept.push(name);
            }
        });
        picker.selection = kept;
    }

    function refreshPicker(picker) {
        var labels = labelsOf(picker.group);
        reconcileSelection(picker, labels);
        var words = queryWords(picker);
        var visible = 0;
        labels.forEach(function (label, index) {
            var name = nameOf(label);
            var position = picker.selection.indexOf(name);
            var selected = position !== -1;
            var lower = name.toLowerCase();
            var matches = words.every(function (word) {
                return lower.indexOf(word) !== -1;
            });
            var show = selected || matches;
            setClass(label, HIDDEN_CLASS, !show);
            setClass(label, SELECTED_CLASS, selected);
            var order = String(selected ? position - 100000 : index);
            if (label.style.order !== order) {
                label.style.order = order;
            }
            if (show) {
                visible += 1;
            }
        });
        picker.group.setAttribute("data-fooocus-visible", String(visible));
    }

    function absolutePreviewUrl(url) {
        if (typeof url !== "string" || url === "") {
            return null;
        }
        try {
            var base = new URL(".", document.baseURI);
            var resolved = new URL(url.replace(/^\/+/, ""), base);
            return resolved.origin === window.location.origin ? resolved.href : null;
        } catch (error) {
            return null;
        }
    }

    function loadPreviews(force) {
        if (previewsPromise && !force) {
            return previewsPromise;
        }
        previewsPromise = fetch(new URL(PREVIEWS_URL, new URL(".", document.baseURI)).href,
            {credentials: "same-origin"})
            .then(function (response) {
                return response.ok ? response.json() : {previews: {}};
            })
            .then(function (data) {
                var map = new Map();
                var listed = data && typeof data.previews === "object" && data.previews !== null ? data.previews : {};
                Object.keys(listed).forEach(function (name) {
                    var url = absolutePreviewUrl(listed[name]);
                    if (url) {
                        map.set(name, url);
                    }
                });
                previews = map;
                return map;
            })
            .catch(function () {
                previews = new Map();
                return previews;
            });
        return previewsPromise;
    }

    function previewBox() {
        var box = document.getElementById("fooocus-style-preview");
        if (box === null) {
            box = document.createElement("div");
            box.id = "fooocus-style-preview";
            box.className = "fooocus-style-preview";
            var image = document.createElement("img");
            image.alt = "";
            var caption = document.createElement("div");
            caption.className = "fooocus-style-preview-caption";
            var card = document.createElement("div");
            card.className = "fooocus-style-card";
            box.appendChild(image);
            box.appendChild(caption);
            box.appendChild(card);
            document.body.appendChild(box);
        }
        return box;
    }

    // The picker's card data ({name: {prompt, negative} or {about}}), parsed again only when changed.
    function cardsOf(picker) {
        var wrapper = picker ? root().querySelector("#" + CSS.escape(picker.prefix + "_styles_cards")) : null;
        var carrier = wrapper ? wrapper.querySelector("[data-cards]") : null;
        var raw = carrier ? carrier.getAttribute("data-cards") || "{}" : "{}";
        if (picker && picker.cardsRaw !== raw) {
            try {
                var parsed = JSON.parse(raw);
                picker.cards = parsed !== null && typeof parsed === "object" ? parsed : {};
            } catch (error) {
                picker.cards = {};
            }
            picker.cardsRaw = raw;
        }
        return picker ? picker.cards || {} : {};
    }

    function cardFor(picker, name) {
        var cards = cardsOf(picker);
        var card = Object.prototype.hasOwnProperty.call(cards, name) ? cards[name] : null;
        return card !== null && typeof card === "object" ? card : null;
    }

    function appendText(parent, tag, className, text) {
        var element = document.createElement(tag);
        element.className = className;
        element.textContent = text;
        parent.appendChild(element);
        return element;
    }

    // A template as text nodes, every "{prompt}" in a <mark>.
    function appendTemplate(parent, template) {
        var line = appendText(parent, "div", "fooocus-style-card-text", "");
        String(template).split("{prompt}").forEach(function (piece, index) {
            if (index > 0) {
                appendText(line, "mark", "fooocus-style-card-placeholder", "{prompt}");
            }
            if (piece !== "") {
                line.appendChild(document.createTextNode(piece));
            }
        });
        return line;
    }

    function fillCard(element, name, card) {
        element.textContent = "";
        appendText(element, "div", "fooocus-style-card-title", name);
        if (typeof card.about === "string") {
            appendText(element, "div", "fooocus-style-card-text", card.about);
            return;
        }
        var prompt = typeof card.prompt === "string" ? card.prompt : "";
        var negative = typeof card.negative === "string" ? card.negative : "";
        appendText(element, "div", "fooocus-style-card-label", "Positive");
        if (prompt === "") {
            appendText(element, "div", "fooocus-style-card-text fooocus-style-card-empty",
                "(no positive template: your prompt stays as it is)");
        } else {
            appendTemplate(element, prompt);
        }
        appendText(element, "div", "fooocus-style-card-label", "Negative");
        appendText(element, "div", "fooocus-style-card-text" + (negative === "" ? " fooocus-style-card-empty" : ""),
            negative === "" ? "(none)" : negative);
    }

    function place(box, event) {
        var width = box.offsetWidth || 150;
        var height = box.offsetHeight || 170;
        box.style.left = Math.max(0, Math.min(event.clientX + 16, window.innerWidth - width - 8)) + "px";
        box.style.top = Math.max(0, Math.min(event.clientY + 16, window.innerHeight - height - 8)) + "px";
    }

    function showPreview(name, event, picker) {
        var url = previews ? previews.get(name) : null;
        var box = previewBox();
        var card = url ? null : cardFor(picker, name);
        if (!url && card === null) {
            box.classList.remove("fooocus-style-preview-visible");
            return;
        }
        box.classList.toggle("fooocus-style-preview-card", card !== null);
        if (url) {
            var image = box.querySelector("img");
            if (image.src !== url) {
                image.src = url;
            }
            box.querySelector(".fooocus-style-preview-caption").textContent = name;
        } else {
            fillCard(box.querySelector(".fooocus-style-card"), name, card);
        }
        box.classList.add("fooocus-style-preview-visible");
        place(box, event);
    }

    function hidePreview() {
        var box = document.getElementById("fooocus-style-preview");
        if (box !== null) {
            box.classList.remove("fooocus-style-preview-visible");
        }
    }

    function labelFromEvent(group, event) {
        var label = event.target && event.target.closest ? event.target.closest("label") : null;
        return label !== null && group.contains(label) ? label : null;
    }

    function attach(group) {
        if (pickers.has(group)) {
            return;
        }
        var prefix = group.id.replace(/_styles$/, "");
        var picker = {
            group: group,
            prefix: prefix,
            selection: [],
            searchBox: function () {
                var wrapper = root().querySelector("#" + CSS.escape(prefix + "_styles_search"));
                return wrapper ? wrapper.querySelector("textarea, input") : null;
            },
            countBox: function () {
                return root().querySelector("#" + CSS.escape(prefix + "_styles_count"));
            },
        };
        pickers.set(group, picker);

        group.addEventListener("change", function (event) {
            var label = labelFromEvent(group, event);
            if (label !== null) {
                var name = nameOf(label);
                picker.selection = picker.selection.filter(function (item) {
                    return item !== name;
                });
                if (isChecked(label)) {
                    picker.selection.push(name);
                }
            }
            refreshPicker(picker);
        });
        group.addEventListener("mouseover", function (event) {
            var label = labelFromEvent(group, event);
            if (label === null) {
                return;
            }
            var name = nameOf(label);
            if (previews === null) {
                loadPreviews(false).then(function () {
                    showPreview(name, event, picker);
                });
            } else {
                showPreview(name, event, picker);
            }
        });
        group.addEventListener("mouseout", function (event) {
            if (labelFromEvent(group, event) !== null) {
                hidePreview();
            }
        });

        var refreshButton = root().querySelector("#" + CSS.escape(prefix + "_styles_refresh"));
        if (refreshButton !== null) {
            refreshButton.addEventListener("click", function () {
                window.setTimeout(function () {
                    loadPreviews(true);
                }, 1500);
            });
        }
        new MutationObserver(function () {
            refreshPicker(picker);
        }).observe(group, {childList: true, subtree: true, attributes: true, attributeFilter: ["class"]});
        var countBox = picker.countBox();
        if (countBox !== null) {
            new MutationObserver(function () {
                refreshPicker(picker);
            }).observe(countBox, {childList: true, subtree: true, characterData: true, attributes: true});
        }
        refreshPicker(picker);
    }

    // One delegated listener: the search box may be rendered after the group (closed accordions).
    function onSearchInput(event) {
        var target = event.target;
        if (!target || !target.closest) {
            return;
        }
        var wrapper = target.closest('[id$="_styles_search"]');
        if (wrapper === null) {
            return;
        }
        var prefix = wrapper.id.replace(/_styles_search$/, "");
        pickers.forEach(function (picker, group) {
            if (group.id === prefix + "_styles") {
                refreshPicker(picker);
            }
        });
    }

    var listening = false;

    function attachAll() {
        if (!listening) {
            listening = true;
            root().addEventListener("input", onSearchInput);
        }
        root().querySelectorAll("." + GROUP_CLASS).forEach(function (element) {
            // gradio puts elem_classes on the block; the elem_id tells the prefix.
            if (/_styles$/.test(element.id || "")) {
                attach(element);
            }
        });
    }

    // After a style import in one tab, the other tabs' pickers load the new library too: their own
    // Refresh buttons (each keeps its tab's selection). `ownRefreshId`: the importing tab's button.
    function refreshOtherPickers(ownRefreshId) {
        var clicked = [];
        root().querySelectorAll("." + PICKER_CLASS + ' [id$="_styles_refresh"]').forEach(function (button) {
            if (button.id !== ownRefreshId && clicked.indexOf(button.id) === -1) {
                clicked.push(button.id);
                button.click();
            }
        });
        return clicked;
    }

    window.fooocusStyles = {attachAll: attachAll, refresh: function () {
        pickers.forEach(refreshPicker);
    }, loadPreviews: loadPreviews, refreshOtherPickers: refreshOtherPickers};

    if (typeof onUiLoaded === "function") {
        onUiLoaded(attachAll);
    } else {
        document.addEventListener("DOMContentLoaded", attachAll);
    }
    if (typeof onUiUpdate === "function") {
        onUiUpdate(attachAll);
    }
})();
