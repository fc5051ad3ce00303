from shared.web import Api

api = Api(service="volunteering", title="Recovery community center: volunteering")
