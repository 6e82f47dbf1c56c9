/*
 * QMP request validation and dispatch against the generated command table,
 * with QEMU's error classes and texts.  Stateless; main thread only.
 */
#include <string.h>

#include "qapi-commands.h"
#include "monitor/qmp-dispatch.h"
#include "util/error.h"

const QmpCommandDef *qmp_find_command(const char *name)
{
    for (size_t i = 0; i < qmp_command_count; i++) {
        if (strcmp(qmp_command_table[i].name, name) == 0) {
            return &qmp_command_table[i];
        }
    }
    return NULL;
}

char *qmp_dumps(const json_t *value)
{
    /* no JSON_COMPACT: jansson then separates with ", " and ": " */
    return json_dumps(value, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

static const char *arg_type_name(QmpArgType type)
{
    switch (type) {
    case QMP_ARG_STR:
    case QMP_ARG_ENUM:
        return "string";
    case QMP_ARG_INT:
        return "integer";
    case QMP_ARG_BOOL:
        return "boolean";
    case QMP_ARG_NUMBER:
        return "number";
    case QMP_ARG_ARRAY:
        return "array";
    case QMP_ARG_OBJECT:
        return "object";
    default:
        return "value";
    }
}

static bool arg_type_ok(QmpArgType type, json_t *v)
{
    switch (type) {
    case QMP_ARG_STR:
    case QMP_ARG_ENUM:
        return json_is_string(v);
    case QMP_ARG_INT:
        return json_is_integer(v);
    case QMP_ARG_BOOL:
        return json_is_boolean(v);
    case QMP_ARG_NUMBER:
        return json_is_number(v);
    case QMP_ARG_ARRAY:
        return json_is_array(v);
    case QMP_ARG_OBJECT:
        return json_is_object(v);
    default:
        return true;
    }
}

/* One value against its schema type; name is how QEMU names it in errors. */
static bool check_value(QmpArgType type, const char *const *enum_values, const char *name,
                        json_t *value, GError **errp)
{
    if (!arg_type_ok(type, value)) {
        error_setg(errp, "Invalid parameter type for '%s', expected: %s", name,
                   arg_type_name(type));
        return false;
    }
    if (type == QMP_ARG_ENUM) {
        for (const char *const *v = enum_values; *v; v++) {
            if (strcmp(*v, json_string_value(value)) == 0) {
                return true;
            }
        }
        error_setg(errp, "Parameter '%s' does not accept value '%s'", name,
                   json_string_value(value));
        return false;
    }
    return true;
}

static bool check_arg(const QmpArgDef *def, const char *key, json_t *value, GError **errp)
{
    size_t i;
    json_t *elem;

    if (!check_value(def->type, def->enum_values, key, value, errp)) {
        return false;
    }
    if (def->type != QMP_ARG_ARRAY) {
        return true;
    }
    json_array_foreach(value, i, elem)
    {
        char *name = g_strdup_printf("%s[%zu]", key, i);
        bool ok = check_value(def->element, def->enum_values, name, elem, errp);

        g_free(name);
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool check_args(const QmpCommandDef *cmd, json_t *args, GError **errp)
{
    const char *key;
    json_t *value;

    json_object_foreach(args, key, value)
    {
        const QmpArgDef *def = NULL;
        for (size_t i = 0; i < cmd->nargs; i++) {
            if (strcmp(cmd->args[i].name, key) == 0) {
                def = &cmd->args[i];
            }
        }
        if (!def && cmd->any_args) {
            continue; /* the handler checks it (device_add's properties) */
        }
        if (!def) {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            return false;
        }
        if (!check_arg(def, key, value, errp)) {
            return false;
        }
    }
    for (size_t i = 0; i < cmd->nargs; i++) {
        if (!cmd->args[i].optional && !json_object_get(args, cmd->args[i].name)) {
            error_setg(errp, "Parameter '%s' is missing", cmd->args[i].name);
            return false;
        }
    }
    return true;
}

static json_t *error_response(GError *err)
{
    json_t *resp = json_pack("{s:{s:s,s:s}}", "error", "class",
                             error_class_name(err->domain == VMM_ERROR ? err->code : 0),
                             "desc", err->message);
    g_error_free(err);
    return resp;
}

/* Check the request's envelope; returns the command name or NULL. */
static const char *check_envelope(json_t *request, json_t **args, GError **errp)
{
    const char *key;
    json_t *value;
    json_t *execute;

    if (!json_is_object(request)) {
        error_setg(errp, "QMP input must be a JSON object");
        return NULL;
    }
    json_object_foreach(request, key, value)
    {
        /* "exec-oob" too: out-of-band execution is never enabled here, and
         * QEMU 7.2 calls the member unexpected on such a session */
        if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return NULL;
        }
    }
    execute = json_object_get(request, "execute");
    if (!execute) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return NULL;
    }
    if (!json_is_string(execute)) {
        error_setg(errp, "QMP input member 'execute' must be a string");
        return NULL;
    }
    *args = json_object_get(request, "arguments");
    if (*args && !json_is_object(*args)) {
        error_setg(errp, "QMP input member 'arguments' must be an object");
        return NULL;
    }
    return json_string_value(execute);
}

json_t *qmp_dispatch(QmpContext *ctx, json_t *request, bool *negotiated)
{
    GError *err = NULL;
    json_t *args = NULL, *ret, *resp, *id;
    const QmpCommandDef *cmd;
    const char *name = check_envelope(request, &args, &err);

    if (!name) {
        resp = error_response(err);
        goto out;
    }
    if (!*negotiated && strcmp(name, "qmp_capabilities") != 0) {
        error_set_class(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                        "Expecting capabilities negotiation with 'qmp_capabilities'");
        resp = error_response(err);
        goto out;
    }
    cmd = qmp_find_command(name);
    if (!cmd) {
        error_set_class(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                        "The command %s has not been found", name);
        resp = error_response(err);
        goto out;
    }
    args = args ? json_incref(args) : json_object();
    if (!check_args(cmd, args, &err)) {
        json_decref(args);
        resp = error_response(err);
        goto out;
    }
    /* after the arguments' checks, as in QEMU, where the command says it */
    if (*negotiated && strcmp(name, "qmp_capabilities") == 0) {
        json_decref(args);
        error_set_class(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                        "Capabilities negotiation is already complete, command "
                        "ignored");
        resp = error_response(err);
        goto out;
    }
    ret = cmd->handler(ctx, args, &err);
    json_decref(args);
    if (!ret) {
        resp = error_response(err ? err : g_error_new(VMM_ERROR, 0, "failed"));
        goto out;
    }
    if (strcmp(name, "qmp_capabilities") == 0) {
        *negotiated = true;
    }
    resp = json_pack("{s:o}", "return", ret);
out:
    id = json_is_object(request) ? json_object_get(request, "id") : NULL;
    if (id) {
        json_object_set(resp, "id", id);
    }
    return resp;
}
